//go:build unix

package emulator

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockLogFile takes an exclusive advisory lock on the open log, so two
// stores (or two emulator processes) never append to one log file.
func lockLogFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("emulator: log %s is in use by another store or process", f.Name())
	}
	if err != nil {
		return fmt.Errorf("emulator: lock log %s: %w", f.Name(), err)
	}
	return nil
}
