//go:build !unix

package emulator

import "os"

// lockLogFile is a no-op where advisory file locks are not available.
func lockLogFile(*os.File) error { return nil }
