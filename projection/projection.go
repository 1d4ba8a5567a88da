// The contracts of a projection: the events it sees, what it is, and the store it writes to.

package projection

import (
	"context"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Position is a KurrentDB $all log position.
type Position = tracking.Position

// Event is one event of the $all log as a projection sees it. An Event is read-only once a
// Source delivers it: a Source may deliver the same value, sharing its Data and Metadata, to
// several subscriptions (source/fanout decodes each event once for all the projections of a
// process), so the runner, handlers and batch projections read it and never change it or the
// bytes its slices hold (copy them first to change them).
type Event struct {
	ID          string    // event id, a UUID in canonical form
	Type        string    // event type; in Python eventsourcing, the topic "module:Class.Event"
	Stream      string    // stream name; in eventsourcing, the aggregate id
	Revision    uint64    // revision of the event in its stream, from 0
	Position    Position  // $all log position
	Data        []byte    // event payload as stored
	Metadata    []byte    // user metadata as stored
	ContentType string    // "application/json" or "application/octet-stream"
	Created     time.Time // time the server stored the event (UTC)
}

// Projection updates a view from events of the types named by Topics. Tx is the view store's
// transaction type (pgx.Tx for views/postgres, *memory.Tx for views/memory). Handle runs inside
// the transaction that also advances the projection's tracking position: it must not commit or
// roll back, and everything it changes must go through tx.
type Projection[Tx any] interface {
	// Name is the projection's tracking key; it must be stable across releases.
	Name() string
	// Topics are the exact event types the projection handles.
	Topics() []string
	// Handle applies one event to the view. An error aborts the batch; the runner's error
	// policy decides what happens next.
	Handle(ctx context.Context, tx Tx, e Event) error
}

// Store is a view store: it owns the transactions in which projections change views and
// their tracking positions advance together.
type Store[Tx any] interface {
	tracking.Reader
	tracking.Waiter
	// Apply begins a transaction, calls fn with it, advances the tracking state of projection
	// from prev to next by compare-and-set, and commits. If the tracking row no longer holds
	// prev, it rolls back and returns an error wrapping tracking.ErrConflict. If fn fails,
	// nothing is committed and fn's error is returned.
	Apply(ctx context.Context, projection string, prev, next tracking.State, fn func(ctx context.Context, tx Tx) error) error
}
