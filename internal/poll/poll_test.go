package poll_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
)

// recorder is a testing.TB that records Fatalf instead of ending the goroutine.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	r := &recorder{}
	calls := 0
	poll.Until(r, 5*time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if r.fatal != "" || calls != 3 {
		t.Fatalf("Until: fatal %q after %d calls, want none after 3", r.fatal, calls)
	}
}

func TestUntilFailsNamingWhatItAwaited(t *testing.T) {
	r := &recorder{}
	start := time.Now()
	poll.Until(r, 30*time.Millisecond, "the emulator listens", func() bool { return false })
	if want := "timed out after 30ms waiting until the emulator listens"; r.fatal != want {
		t.Fatalf("Until failed with %q, want %q", r.fatal, want)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatalf("Until gave up after %s, before its 30ms timeout", time.Since(start))
	}
}

func TestUntilNilFailsWithTheLastError(t *testing.T) {
	r := &recorder{}
	calls := 0
	poll.UntilNil(r, 20*time.Millisecond, "the row is there", func() error {
		calls++
		return fmt.Errorf("attempt %d: no rows", calls)
	})
	if want := fmt.Sprintf("timed out after 20ms waiting until the row is there: attempt %d: no rows", calls); r.fatal != want || calls < 2 {
		t.Fatalf("UntilNil failed with %q after %d calls, want %q after at least 2", r.fatal, calls, want)
	}
}

func TestWaitWrapsTheLastError(t *testing.T) {
	errRefused := errors.New("refused")
	err := poll.Wait(0, func() error { return errRefused })
	if !errors.Is(err, errRefused) || err.Error() != "not within 0s: refused" {
		t.Fatalf("Wait = %v, want %q wrapping the check's error", err, "not within 0s: refused")
	}
}
