package fanout

// The helpers of the tests: a log of three event types, a reader of a subscription, and the
// check that what a subscriber got is exactly what its own filtered subscription would get.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
)

const (
	typeA = "test:A"
	typeB = "test:B"
	typeC = "test:C"
)

var allTypes = []string{typeA, typeB, typeC}

// appendMixed appends n events cycling through the types A, B, C, A, A, B, C, ... and returns
// them.
func appendMixed(l *projectiontest.Log, n int) []projection.Event {
	cycle := []string{typeA, typeB, typeC, typeA}
	out := make([]projection.Event, 0, n)
	for i := range n {
		out = append(out, l.Append(fmt.Sprintf("s-%d", i%7), cycle[i%len(cycle)], []byte(fmt.Sprintf(`{"i":%d}`, i))))
	}
	return out
}

// reader reads a subscription, keeping everything it got.
type reader struct {
	t      *testing.T
	sub    projection.Subscription
	topics []string
	from   tracking.State
	msgs   []projection.Message
}

func subscribe(t *testing.T, src projection.Source, topics []string, from tracking.State) *reader {
	t.Helper()
	sub, err := src.Subscribe(context.Background(), topics, from)
	if err != nil {
		t.Fatalf("Subscribe(%v, %v): %v", topics, from, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return &reader{t: t, sub: sub, topics: topics, from: from}
}

// next reads one message, failing after 10 s.
func (r *reader) next() (projection.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.sub.Next(ctx)
	if err != nil {
		return m, fmt.Errorf("Next (topics %v, after %d messages): %w", r.topics, len(r.msgs), err)
	}
	r.msgs = append(r.msgs, m)
	return m, nil
}

// untilCaughtUp reads until the caught-up message.
func (r *reader) untilCaughtUp() error {
	for {
		m, err := r.next()
		if err != nil || m.Kind == projection.CaughtUpMessage {
			return err
		}
	}
}

// untilEvent returns a function that reads until an event at p or after.
func untilEvent(p tracking.Position) func(r *reader) error {
	return func(r *reader) error {
		for {
			m, err := r.next()
			if err != nil || (m.Kind == projection.EventMessage && m.Event.Position.Compare(p) >= 0) {
				return err
			}
		}
	}
}

// untilLast returns a function that reads until the last event of log a reader's own
// subscription delivers.
func untilLast(log []projection.Event) func(r *reader) error {
	return func(r *reader) error {
		want := r.want(log)
		if len(want) == 0 {
			return nil
		}
		return untilEvent(want[len(want)-1].Position)(r)
	}
}

// together runs read on every reader of rs at once, and fails the test if any fails.
func together(t *testing.T, read func(r *reader) error, rs ...*reader) {
	t.Helper()
	errs := make(chan error, len(rs))
	for _, r := range rs {
		go func() { errs <- read(r) }()
	}
	for range rs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// events returns the events read.
func (r *reader) events() []projection.Event {
	var out []projection.Event
	for _, m := range r.msgs {
		if m.Kind == projection.EventMessage {
			out = append(out, m.Event)
		}
	}
	return out
}

// want returns the events of log that r's own filtered subscription delivers.
func (r *reader) want(log []projection.Event) []projection.Event {
	var out []projection.Event
	for _, e := range log {
		if slices.Contains(r.topics, e.Type) && !r.from.Done(e.Position.Commit) {
			out = append(out, e)
		}
	}
	return out
}

// check verifies that r got, in order, exactly the events of log its own filtered subscription
// delivers (through the last one it read), that each checkpoint it got came after every such
// event before it and never went back, and that it got one caught-up message.
func (r *reader) check(log []projection.Event) {
	r.t.Helper()
	got, want := r.events(), r.want(log)
	if len(got) > len(want) {
		r.t.Fatalf("topics %v from %v: got %d events, want %d", r.topics, r.from, len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			r.t.Fatalf("topics %v from %v: event %d is %s at %v, want %s at %v", r.topics, r.from, i, got[i].Type, got[i].Position, want[i].Type, want[i].Position)
		}
	}
	var delivered int
	var checkpoint uint64
	caughtUp := 0
	for _, m := range r.msgs {
		switch m.Kind {
		case projection.EventMessage:
			delivered++
		case projection.CheckpointMessage:
			if m.Checkpoint <= checkpoint {
				r.t.Errorf("topics %v: checkpoint %d after %d", r.topics, m.Checkpoint, checkpoint)
			}
			checkpoint = m.Checkpoint
			for _, e := range want[delivered:] {
				if e.Position.Commit < m.Checkpoint {
					r.t.Errorf("topics %v: checkpoint %d delivered before the event at %v", r.topics, m.Checkpoint, e.Position)
				}
			}
		case projection.CaughtUpMessage:
			caughtUp++
		}
	}
	if caughtUp != 1 {
		r.t.Errorf("topics %v: %d caught-up messages, want 1", r.topics, caughtUp)
	}
}

// checkAll checks every reader of rs against log.
func checkAll(log []projection.Event, rs ...*reader) {
	for _, r := range rs {
		r.t.Helper()
		r.check(log)
	}
}

// after returns the state of a projection that processed e.
func after(e projection.Event) tracking.State { return tracking.State{Last: e.Position} }

// waitSubscriptions waits until l has n open subscriptions.
func waitSubscriptions(t *testing.T, l *projectiontest.Log, n int) {
	t.Helper()
	poll.Until(t, 10*time.Second, fmt.Sprintf("%d open subscriptions of the log", n), func() bool { return l.Subscriptions() == n })
}

var errTest = errors.New("test: connection cut")
