package fanout

import (
	"testing"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Events of one transaction share a commit position: a subscriber that delivered the first of
// them has not been through the second, resumes where it is delivered again, and attaches to a
// shared read at the entry that holds it.
func TestCoverageKeepsEventsSharingACommitPosition(t *testing.T) {
	first := tracking.Position{Commit: 200, Prepare: 190}
	second := tracking.Position{Commit: 200, Prepare: 195}
	c := coverage{from: tracking.State{Last: tracking.Position{Commit: 100, Prepare: 100}}, last: first}
	if !c.covers(first) || c.covers(second) {
		t.Fatalf("covers(%v), covers(%v) = %v, %v; want true, false", first, second, c.covers(first), c.covers(second))
	}
	if c.coversState(tracking.State{Last: first}) {
		t.Errorf("coverage through %v covers the state after %v, which is done with %v", first, first, second)
	}
	if !c.coversState(tracking.State{Checkpoint: 200}) {
		t.Error("coverage through the first event at commit 200 does not cover the checkpoint 200")
	}
	r := c.resume()
	if r.Done(200) || !r.Done(199) {
		t.Fatalf("resume() = %v: commit 200 must not be done, 199 must", r)
	}
	again := projection.Message{Kind: projection.EventMessage, Event: projection.Event{Type: typeA, Position: first}}
	next := projection.Message{Kind: projection.EventMessage, Event: projection.Event{Type: typeA, Position: second}}
	topics := map[string]bool{typeA: true}
	if c.take(&again, topics) || !c.take(&next, topics) || c.last != second {
		t.Errorf("after resuming: the first event delivered again, or the second not delivered (last %v)", c.last)
	}

	h := newHub(newSource(nil, Options{Window: 8}), t.Context(), []string{typeA}, tracking.State{})
	for _, p := range []tracking.Position{{Commit: 100, Prepare: 100}, first, second, {Commit: 300, Prepare: 300}} {
		m := projection.Message{Kind: projection.EventMessage, Event: projection.Event{Type: typeA, Position: p}}
		before := h.cov.last
		h.cov.take(&m, nil)
		h.push(entry{msg: m, before: before})
	}
	sub := coverage{last: first}
	if seq, ok := h.attachable([]string{typeA}, &sub); !ok || seq != 2 {
		t.Errorf("attachable after %v = %d, %v; want 2 (the entry of %v), true", first, seq, ok, second)
	}
	if _, ok := h.attachable([]string{typeB}, &sub); ok {
		t.Error("a subscriber of a topic the shared read does not read can attach")
	}
}

// A subscriber's resume state is where it started while it has delivered nothing, and keeps
// the starting state when it says as much as what was delivered since.
func TestCoverageResume(t *testing.T) {
	from := tracking.State{Last: tracking.Position{Commit: 100, Prepare: 100}, Checkpoint: 180}
	c := coverage{from: from}
	if got := c.resume(); got != from {
		t.Errorf("resume() with nothing delivered = %v, want %v", got, from)
	}
	c.checkpoint = 150
	if got := c.resume(); got != from {
		t.Errorf("resume() after a checkpoint behind the start = %v, want %v", got, from)
	}
	c.last = tracking.Position{Commit: 400, Prepare: 400}
	if got, want := c.resume(), (tracking.State{Checkpoint: 400}); got != want {
		t.Errorf("resume() after an event at 400 = %v, want %v", got, want)
	}
	if got := c.reach(); got != 399 {
		t.Errorf("reach() = %d, want 399", got)
	}
}
