// Parking (error policy park): the store's parked events, and which events of a transaction
// are parked instead of handled.

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Parker is implemented by stores that keep parked events: the events of streams that a
// projection under PolicyPark has parked, in log order. A stream is parked while it has
// parked events. The parked events belong to a projection, whatever worker (or partition)
// handles the stream; every method but ParkedStreams runs inside a store transaction tx, so
// parking commits with the tracking advance and a replay with the deletion of what it replayed.
type Parker[Tx any] interface {
	// Park records e as a parked event of projection. cause is the handler's error for the
	// event that parks its stream, nil for an event parked behind it.
	Park(ctx context.Context, tx Tx, projection string, e Event, cause error) error
	// ParkedStreams returns the parked streams of projection, oldest parking first, each with
	// its first parked event (the one that failed).
	ParkedStreams(ctx context.Context, projection string) ([]ParkedStream, error)
	// Parked returns the parked events of stream, in log order.
	Parked(ctx context.Context, tx Tx, projection, stream string) ([]ParkedEvent, error)
	// Unpark deletes the parked events of stream at or before the position through.
	Unpark(ctx context.Context, tx Tx, projection, stream string, through Position) error
	// ReparkFailed records cause as the error of the parked event e: a replay failed on it again.
	ReparkFailed(ctx context.Context, tx Tx, projection string, e Event, cause error) error
	// ClearParked deletes every parked event of projection (a reset rebuilds it from its start).
	ClearParked(ctx context.Context, tx Tx, projection string) error
}

// ParkedEvent is one parked event.
type ParkedEvent struct {
	Event Event `json:"event"`
	// Error is the handler's error for the event that parked its stream (or failed again on a
	// replay); empty for an event parked behind it.
	Error    string    `json:"error,omitempty"`
	ParkedAt time.Time `json:"parked_at"`
}

// ParkedStream is one parked stream of a projection.
type ParkedStream struct {
	Stream string `json:"stream"`
	// Events is how many events of the stream are parked.
	Events int `json:"events"`
	// First is its first parked event: the one whose failure parked the stream.
	First ParkedEvent `json:"first"`
}

// ErrNotParked is wrapped by Runner.ResumeStream's and Runner.SkipStream's errors for a stream
// the projection has not parked.
var ErrNotParked = errors.New("the stream is not parked")

// ErrStillFailing is wrapped by Runner.ResumeStream's error when the handler fails again on a
// parked event: the events before it were replayed, it and the rest stay parked, with the new
// error.
var ErrStillFailing = errors.New("the handler failed again: the stream stays parked")

// parker returns the store's Parker; ok is false when it has none.
func (w *worker[Tx]) parker() (Parker[Tx], bool) {
	pk, ok := any(w.r.store).(Parker[Tx])
	return pk, ok
}

// parkOwner is the name the projection's parked streams are kept under: the projection's
// name. Parked streams belong to the projection, not to a worker: a partition keeps them under
// its projection's name and consults only the streams it handles (a projection that parks is
// partitioned by stream, so each stream's events are one partition's).
func (w *worker[Tx]) parkOwner() string { return w.base }

// handlesStream reports whether the worker handles the events of stream: always, unless it is a
// partition, which handles the streams that hash to it.
func (w *worker[Tx]) handlesStream(stream string) bool {
	return w.part == nil || Partition(stream, w.part.count) == w.part.index
}

// loadParked reads the projection's parked streams, at the start of a session.
func (w *worker[Tx]) loadParked(ctx context.Context) error {
	w.parked = nil
	pk, ok := w.parker()
	if !ok {
		return nil
	}
	streams, err := pk.ParkedStreams(ctx, w.parkOwner())
	if err != nil {
		return fmt.Errorf("projection %q: load the parked streams: %w", w.name, err)
	}
	for _, s := range streams {
		if w.handlesStream(s.Stream) {
			w.markParked(s.Stream, true)
		}
	}
	w.publishParked()
	return nil
}

// markParked adds stream to the parked streams, or removes it.
func (w *worker[Tx]) markParked(stream string, parked bool) {
	if parked {
		if w.parked == nil {
			w.parked = make(map[string]bool)
		}
		w.parked[stream] = true
		return
	}
	delete(w.parked, stream)
}

// publishParked shows the number of parked streams in the status.
func (w *worker[Tx]) publishParked() {
	n := len(w.parked)
	w.update(func(st *Status) { st.ParkedStreams = n })
}

// parkedIn says which events of t are parked instead of handled (nil when none is): those of a
// stream parked already, those t parks (its culprits, t.park), and every later event of their
// streams.
func (w *worker[Tx]) parkedIn(t transaction) []bool {
	if len(w.parked) == 0 && len(t.park) == 0 {
		return nil
	}
	out := make([]bool, len(t.batch))
	now := map[string]bool{}
	some := false
	for i, e := range t.batch {
		if _, culprit := t.park[e.ID]; culprit {
			now[e.Stream] = true
		}
		out[i] = w.parked[e.Stream] || now[e.Stream]
		some = some || out[i]
	}
	if !some {
		return nil
	}
	return out
}

// withPark returns a copy of park with event e's cause added.
func withPark(park map[string]error, e Event, cause error) map[string]error {
	out := make(map[string]error, len(park)+1)
	for k, v := range park {
		out[k] = v
	}
	out[e.ID] = cause
	return out
}

// parkEvent parks e inside tx: with its cause when it is one of t's culprits.
func (w *worker[Tx]) parkEvent(ctx context.Context, tx Tx, t transaction, e Event) error {
	pk, _ := w.parker()
	if err := pk.Park(ctx, tx, w.parkOwner(), e, t.park[e.ID]); err != nil {
		return fmt.Errorf("park event %s at %v in stream %q: %w", e.ID, e.Position, e.Stream, err)
	}
	return nil
}

// parkedCommitted records the streams that the committed t parked.
func (w *worker[Tx]) parkedCommitted(t transaction, parked []bool) {
	if parked == nil {
		return
	}
	for i, e := range t.batch {
		if parked[i] {
			w.markParked(e.Stream, true)
		}
	}
	w.publishParked()
}
