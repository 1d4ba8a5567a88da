// Package poll waits in tests for a condition that becomes true asynchronously: a process
// listening, a row committed, a state reached. It polls with a short, growing interval up to a
// deadline and, in a test, fails with what was awaited and, for checks that return an error,
// the last error seen.
package poll

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// The interval between checks starts at minInterval and doubles up to maxInterval: conditions
// that hold almost at once are seen at once, slow ones do not spin.
const (
	minInterval = time.Millisecond
	maxInterval = 50 * time.Millisecond
)

// Wait calls check until it returns nil and then returns nil, or, once timeout has passed,
// returns an error that wraps check's last error. check is called at least once.
func Wait(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	interval := minInterval
	for {
		err := check()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(min(interval, time.Until(deadline)))
		interval = min(2*interval, maxInterval)
	}
}

// errNotYet is the last error of a condition that never held.
var errNotYet = errors.New("the condition did not hold")

// Until calls cond until it returns true, failing t with "timed out after <timeout> waiting
// until <what>" once timeout has passed. cond may itself fail t (t.Fatal) to stop early.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := Wait(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting until %s", timeout, what)
	}
}

// UntilNil calls check until it returns nil, failing t with "timed out after <timeout> waiting
// until <what>: <check's last error>" once timeout has passed.
func UntilNil(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var last error
	err := Wait(timeout, func() error {
		last = check()
		return last
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting until %s: %v", timeout, what, last)
	}
}
