package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

// Parked events are kept only when their transaction commits; Unpark deletes a stream's
// events through a position, ReparkFailed records a new error, ClearParked empties a
// projection's parked streams and keeps the others'.
func TestParkedEventsCommitWithTheirTransaction(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	ev := func(stream string, c uint64) projection.Event {
		return projection.Event{ID: stream + "-" + string(rune('0'+c)), Stream: stream, Position: tracking.Position{Commit: c, Prepare: c}}
	}
	st := tracking.State{Last: tracking.Position{Commit: 9, Prepare: 9}}
	boom := errors.New("boom")
	if err := s.Apply(ctx, "p", tracking.State{}, st, func(ctx context.Context, tx *memory.Tx) error {
		if err := s.Park(ctx, tx, "p", ev("lost", 1), boom); err != nil {
			return err
		}
		return errors.New("the handler failed")
	}); err == nil {
		t.Fatal("Apply with a failing fn succeeded")
	}
	if ps, _ := s.ParkedStreams(ctx, "p"); len(ps) != 0 {
		t.Fatalf("a rolled-back park was kept: %+v", ps)
	}
	if err := s.Apply(ctx, "p", tracking.State{}, st, func(ctx context.Context, tx *memory.Tx) error {
		for _, e := range []projection.Event{ev("b", 3), ev("a", 1), ev("b", 5), ev("b", 7)} {
			var cause error
			if e.Position.Commit <= 3 {
				cause = boom
			}
			if err := s.Park(ctx, tx, "p", e, cause); err != nil {
				return err
			}
		}
		return s.Park(ctx, tx, "q", ev("a", 2), boom)
	}); err != nil {
		t.Fatal(err)
	}
	ps, _ := s.ParkedStreams(ctx, "p")
	if len(ps) != 2 || ps[0].Stream != "b" || ps[0].Events != 3 || ps[0].First.Error != "boom" || ps[1].Stream != "a" {
		t.Fatalf("parked streams = %+v, want b (3 events, parked first) then a", ps)
	}
	if err := s.Apply(ctx, "p", st, st, func(ctx context.Context, tx *memory.Tx) error {
		if err := s.Unpark(ctx, tx, "p", "b", tracking.Position{Commit: 5, Prepare: 5}); err != nil {
			return err
		}
		if err := s.ReparkFailed(ctx, tx, "p", ev("b", 7), errors.New("again")); err != nil {
			return err
		}
		evs, err := s.Parked(ctx, tx, "p", "b")
		if err != nil || len(evs) != 1 || evs[0].Error != "again" {
			t.Errorf("inside the transaction: %+v, %v; want b's event at 7 with the new error", evs, err)
		}
		return s.ClearParked(ctx, tx, "p")
	}); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.ParkedStreams(ctx, "p"); len(ps) != 0 {
		t.Errorf("parked streams of p after ClearParked = %+v", ps)
	}
	if ps, _ := s.ParkedStreams(ctx, "q"); len(ps) != 1 {
		t.Errorf("parked streams of q = %+v, want a", ps)
	}
}
