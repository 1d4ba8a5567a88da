package backoff_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/backoff"
)

// within fails unless d lies in [nominal/2, nominal].
func within(t *testing.T, what string, d, nominal time.Duration) {
	t.Helper()
	if d < nominal/2 || d > nominal {
		t.Errorf("%s = %v, want within [%v, %v]", what, d, nominal/2, nominal)
	}
}

func TestNextDoublesUpToTheCap(t *testing.T) {
	b := backoff.New(100*time.Millisecond, time.Second)
	for i, nominal := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		within(t, fmt.Sprintf("wait %d", i+1), b.Next(), nominal*time.Millisecond)
	}
}

func TestResetStartsAgainFromMin(t *testing.T) {
	b := backoff.New(10*time.Millisecond, time.Second)
	for range 5 {
		b.Next()
	}
	b.Reset()
	within(t, "first wait after Reset", b.Next(), 10*time.Millisecond)
	within(t, "second wait after Reset", b.Next(), 20*time.Millisecond)
}

func TestLongestWaitsTheCapAndStaysThere(t *testing.T) {
	b := backoff.New(10*time.Millisecond, 80*time.Millisecond)
	within(t, "Longest", b.Longest(), 80*time.Millisecond)
	within(t, "the wait after Longest", b.Next(), 80*time.Millisecond)
	b.Reset()
	within(t, "the wait after Reset", b.Next(), 10*time.Millisecond)
}

func TestAMaxBelowMinIsTakenAsMin(t *testing.T) {
	b := backoff.New(40*time.Millisecond, 10*time.Millisecond)
	for i := range 3 {
		within(t, fmt.Sprintf("wait %d", i+1), b.Next(), 40*time.Millisecond)
	}
	within(t, "Longest", b.Longest(), 40*time.Millisecond)
}

func TestWaitsAreJittered(t *testing.T) {
	b := backoff.New(time.Second, time.Second)
	seen := make(map[time.Duration]bool)
	for range 50 {
		seen[b.Next()] = true
	}
	// 50 draws among half a billion values: equal draws are all but impossible.
	if len(seen) < 40 {
		t.Errorf("%d distinct waits in 50, want them jittered", len(seen))
	}
}

func TestTinyWaitsAreNotJitteredBelowZero(t *testing.T) {
	b := backoff.New(time.Nanosecond, time.Nanosecond)
	if d := b.Next(); d != time.Nanosecond {
		t.Errorf("Next = %v, want 1ns", d)
	}
	z := backoff.New(0, 0)
	if d := z.Next(); d != 0 {
		t.Errorf("Next of a zero Backoff = %v, want 0", d)
	}
}
