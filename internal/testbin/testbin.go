// Package testbin builds the project's commands once per test binary, for end-to-end tests that
// run them as processes.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build is one command to build: Package is its directory, relative to the test's package
// directory; Path receives the binary's path.
type Build struct {
	Package string
	Path    *string
}

// Main is a TestMain body: it builds every command of builds into a temporary directory, runs
// the tests, removes the directory and exits with the tests' code. A failing build exits 1,
// with the compiler's output, before any test runs.
func Main(m *testing.M, builds ...Build) {
	os.Exit(run(m, builds))
}

func run(m *testing.M, builds []Build) int {
	dir, err := os.MkdirTemp("", "projector-testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	for _, b := range builds {
		abs, err := filepath.Abs(b.Package)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testbin:", err)
			return 1
		}
		bin := filepath.Join(dir, filepath.Base(abs))
		if out, err := exec.Command("go", "build", "-o", bin, b.Package).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "testbin: build %s: %v\n%s", b.Package, err, out)
			return 1
		}
		*b.Path = bin
	}
	return m.Run()
}
