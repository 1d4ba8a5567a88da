package tracking_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/tracking"
)

func TestDoneKeepsTheLastEventAndTheCheckpointApart(t *testing.T) {
	s := tracking.State{Last: tracking.Position{Commit: 100, Prepare: 100}, Checkpoint: 300}
	for p, want := range map[uint64]bool{1: true, 100: true, 101: true, 299: true, 300: false, 301: false} {
		if got := s.Done(p); got != want {
			t.Errorf("Done(%d) with %v = %v, want %v", p, s, got, want)
		}
	}
	if got := s.Reached(); got != 299 {
		t.Errorf("Reached = %d, want 299", got)
	}
	var zero tracking.State
	if zero.Done(0) || zero.Done(1) || zero.Reached() != 0 {
		t.Error("the zero state has done something")
	}
	// A checkpoint at or before the last event adds nothing.
	s = tracking.State{Last: tracking.Position{Commit: 100, Prepare: 100}, Checkpoint: 50}
	if s.Reached() != 100 || s.Done(101) {
		t.Errorf("state %v: Reached %d, Done(101) %v", s, s.Reached(), s.Done(101))
	}
}

func TestCheckStorableRejectsPositionsAboveInt64(t *testing.T) {
	ok := tracking.State{Last: tracking.Position{Commit: tracking.MaxStorablePosition, Prepare: tracking.MaxStorablePosition}}
	if err := tracking.CheckStorable(ok); err != nil {
		t.Errorf("CheckStorable(%v) = %v", ok, err)
	}
	for _, s := range []tracking.State{
		{Last: tracking.Position{Commit: 1 << 63}},
		{Last: tracking.Position{Prepare: 1 << 63}},
		{Checkpoint: 1<<64 - 1},
	} {
		if err := tracking.CheckStorable(s); !errors.Is(err, tracking.ErrPositionTooLarge) {
			t.Errorf("CheckStorable(%v) = %v, want ErrPositionTooLarge", s, err)
		}
	}
}

func TestPositionOrder(t *testing.T) {
	a, b := tracking.Position{Commit: 1, Prepare: 5}, tracking.Position{Commit: 2, Prepare: 0}
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
		t.Error("positions are ordered by commit first")
	}
	if c := (tracking.Position{Commit: 1, Prepare: 6}); a.Compare(c) != -1 {
		t.Error("equal commits are ordered by prepare")
	}
	if a.String() != "C:1/P:5" {
		t.Errorf("String = %s", a)
	}
}

func TestWatermarkWakesWaitersAndNeverMovesBack(t *testing.T) {
	var w tracking.Watermark
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]tracking.State, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			results[i], errs[i] = w.Wait(cctx, "p", uint64(100*(i+1)))
		})
	}
	poll.Until(t, 5*time.Second, "4 waiters wait", func() bool { return w.Waiting("p") == 4 })
	w.Set("p", tracking.State{Last: tracking.Position{Commit: 200, Prepare: 200}})
	w.Set("p", tracking.State{Last: tracking.Position{Commit: 100, Prepare: 100}}) // ignored
	w.Set("p", tracking.State{Last: tracking.Position{Commit: 200, Prepare: 200}, Checkpoint: 401})
	wg.Wait()
	for i, err := range errs {
		if err != nil || !results[i].Done(uint64(100*(i+1))) {
			t.Errorf("waiter %d: %v, %v", i, results[i], err)
		}
	}
	if s, _, _ := w.Load(ctx, "p"); s.Last.Commit != 200 || s.Checkpoint != 401 {
		t.Errorf("Load = %v", s)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if s, err := w.Wait(cctx, "p", 401); !errors.Is(err, context.DeadlineExceeded) || s.Checkpoint != 401 {
		t.Errorf("Wait(401) = %v, %v; want a timeout with the current state", s, err)
	}
	w.Reset("p")
	if _, ok, _ := w.Load(ctx, "p"); ok {
		t.Error("Reset kept the state")
	}
}
