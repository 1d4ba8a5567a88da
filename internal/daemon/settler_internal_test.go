package daemon

import (
	"testing"

	"github.com/projector-dev/projector/projection"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestSettlerWakesOnTheCommandedChangeOfItsProjection checks that a command waiting for the
// change it causes wakes only at a change of its projection that reports a command, and that a
// wait given up leaves nothing behind.
func TestSettlerWakesOnTheCommandedChangeOfItsProjection(t *testing.T) {
	s := newSettler()
	p, forgetP := s.expect("p")
	defer forgetP()
	q, forgetQ := s.expect("q")
	s.StateChanged(projection.StateChange{Projection: "p", From: projection.StateLive, To: projection.StateStopped})
	s.StateChanged(projection.StateChange{Projection: "q", From: projection.StateStopped, To: projection.StateStarting, Command: projection.CommandResume})
	if closed(p) || !closed(q) {
		t.Fatalf("after an uncommanded change of p and a resume of q: p woken %v, q woken %v; want q only", closed(p), closed(q))
	}
	forgetQ() // after the wake: nothing to remove
	s.StateChanged(projection.StateChange{Projection: "p", From: projection.StateStopped, To: projection.StateStarting, Command: projection.CommandSkip})
	if !closed(p) {
		t.Fatal("p not woken by its skip")
	}
	r, forgetR := s.expect("r")
	forgetR()
	s.StateChanged(projection.StateChange{Projection: "r", From: projection.StateLive, To: projection.StateStarting, Command: projection.CommandReset})
	if closed(r) || len(s.waiting) != 0 {
		t.Errorf("a forgotten wait was woken (%v) or kept: %v", closed(r), s.waiting)
	}
}
