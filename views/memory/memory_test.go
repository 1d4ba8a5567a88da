package memory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pos(c uint64) tracking.State {
	return tracking.State{Last: tracking.Position{Commit: c, Prepare: c}}
}

func TestApplyCommitsViewAndTrackingTogether(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	err := s.Apply(ctx, "p", tracking.State{}, pos(10), func(_ context.Context, tx *memory.Tx) error {
		tx.Add("n", 2)
		tx.Set("k", "v")
		if v, _ := tx.Get("n"); v != int64(2) {
			return fmt.Errorf("read own write: %v", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = s.Apply(ctx, "p", pos(10), pos(20), func(_ context.Context, tx *memory.Tx) error {
		tx.Add("n", 5)
		tx.Delete("k")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Apply = %v, want the handler's error", err)
	}
	if got, ok := s.Get("k"); s.Int("n") != 2 || !ok || got != "v" {
		t.Errorf("a failed batch leaked writes: n=%d k=%v", s.Int("n"), got)
	}
	if st, _, _ := s.Load(ctx, "p"); st != pos(10) {
		t.Errorf("tracking = %v, want %v", st, pos(10))
	}
	if err := s.Apply(ctx, "p", pos(10), pos(20), func(_ context.Context, tx *memory.Tx) error { tx.Delete("k"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("k"); ok || len(s.Keys("")) != 1 {
		t.Errorf("delete not applied: keys %v", s.Keys(""))
	}
}

func TestTrackingIsUniquePerPosition(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	noop := func(context.Context, *memory.Tx) error { return nil }
	if err := s.Apply(ctx, "p", tracking.State{}, pos(10), noop); err != nil {
		t.Fatal(err)
	}
	for _, prev := range []tracking.State{{}, pos(5), pos(20)} {
		if err := s.Apply(ctx, "p", prev, pos(30), noop); !errors.Is(err, tracking.ErrConflict) {
			t.Errorf("Apply from %v = %v, want ErrConflict", prev, err)
		}
	}
	if err := s.Apply(ctx, "p", pos(10), tracking.State{Last: tracking.Position{Commit: 1 << 63}}, noop); !errors.Is(err, tracking.ErrPositionTooLarge) {
		t.Errorf("Apply past 2^63-1 = %v, want ErrPositionTooLarge", err)
	}
}

func TestWaitReturnsOnCommitAndTimesOut(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := s.Wait(cctx, "p", 10)
		done <- err
	}()
	if err := s.Apply(ctx, "p", tracking.State{}, pos(10), func(context.Context, *memory.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(cctx, "p", 11); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(11) = %v, want a timeout", err)
	}
}

func ExampleStore() {
	view := memory.New()
	ctx := context.Background()
	// What a runner does with each batch: handlers change the view through tx, and the
	// tracking position advances in the same atomic step.
	_ = view.Apply(ctx, "dog-counts", tracking.State{}, pos(1234), func(_ context.Context, tx *memory.Tx) error {
		tx.Add("dogs", 1)
		return nil
	})
	state, _ := view.Wait(ctx, "dog-counts", 1234)
	fmt.Println(view.Int("dogs"), state.Last.Commit)
	// Output: 1 1234
}

// A batch whose context ends before the commit (a lost lease, a drain timeout) commits nothing.
func TestApplyCommitsNothingOnceItsContextHasEnded(t *testing.T) {
	s := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	err := s.Apply(ctx, "p", tracking.State{}, pos(10), func(_ context.Context, tx *memory.Tx) error {
		tx.Add("n", 1)
		cancel() // the lease ends while the handlers run
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply = %v, want context.Canceled", err)
	}
	if _, ok, _ := s.Load(context.Background(), "p"); ok || s.Int("n") != 0 {
		t.Errorf("the batch was committed: n = %d", s.Int("n"))
	}
}

func TestRewindEmptiesTheViewAndResetsWaiters(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	err := s.Apply(ctx, "p", tracking.State{}, pos(5), func(_ context.Context, tx *memory.Tx) error {
		tx.Set("p/a", int64(1))
		tx.Set("p/b", int64(2))
		tx.Set("q/a", int64(3))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Apply(ctx, "p", pos(5), tracking.State{}, func(_ context.Context, tx *memory.Tx) error {
		tx.Set("p/c", int64(4))
		if got := fmt.Sprint(tx.Keys("p/")); got != "[p/a p/b p/c]" {
			t.Errorf("Keys in the transaction = %s", got)
		}
		for _, k := range tx.Keys("p/") {
			tx.Delete(k)
		}
		if got := tx.Keys("p/"); len(got) != 0 {
			t.Errorf("Keys after deleting = %v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Keys("")); got != "[q/a]" {
		t.Errorf("keys after the rewind = %s, want [q/a]", got)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if st, err := s.Wait(wctx, "p", 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(5) after the rewind = %v, %v; want it to block until the rebuild", st, err)
	}
}
