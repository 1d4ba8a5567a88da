// Batch projections: a projection that applies a whole batch at once (set-based), and the
// Batch adapter that builds one from a function.

package projection

import (
	"context"
	"fmt"
)

// BatchProjection is a Projection that applies a batch of events at once: the Runner detects
// it and calls HandleBatch once per batch, with the batch's events of the projection's topics
// in log order, inside the transaction that also advances tracking. Handle is not called by
// the Runner.
//
// When HandleBatch fails, the Runner narrows the failure to its event by bisecting the batch:
// it commits the first half of the failing events when it can (each event once) and otherwise
// halves again, each attempt in a transaction of its own, until one event fails alone; the
// error policy then decides about that event as it does for Handle.
type BatchProjection[Tx any] interface {
	Projection[Tx]
	// HandleBatch applies events, in log order, to the view. It must not commit or roll back
	// tx. An error aborts the transaction; the Runner bisects the batch to find its event.
	HandleBatch(ctx context.Context, tx Tx, events []Event) error
}

// BatchFunc applies a batch of events, in log order, to a view inside the store's transaction.
type BatchFunc[Tx any] func(ctx context.Context, tx Tx, events []Event) error

// Batch is a BatchProjection built from a function.
//
//	counts := projection.NewBatch("dog-counts", []string{"Registered"},
//		func(ctx context.Context, tx *memory.Tx, events []projection.Event) error {
//			tx.Add("dogs", int64(len(events)))
//			return nil
//		})
type Batch[Tx any] struct {
	name   string
	topics []string
	fn     BatchFunc[Tx]
}

var _ BatchProjection[any] = (*Batch[any])(nil)

// NewBatch returns the batch projection called name that applies the events of topics with
// fn. A nil fn is a programming error and panics naming the projection.
func NewBatch[Tx any](name string, topics []string, fn BatchFunc[Tx]) *Batch[Tx] {
	if fn == nil {
		panic(fmt.Sprintf("projection %q: NewBatch: nil function", name))
	}
	return &Batch[Tx]{name: name, topics: append([]string(nil), topics...), fn: fn}
}

// Name implements Projection.
func (b *Batch[Tx]) Name() string { return b.name }

// Topics implements Projection.
func (b *Batch[Tx]) Topics() []string { return append([]string(nil), b.topics...) }

// Handle implements Projection: it applies e as a batch of one.
func (b *Batch[Tx]) Handle(ctx context.Context, tx Tx, e Event) error {
	return b.fn(ctx, tx, []Event{e})
}

// HandleBatch implements BatchProjection.
func (b *Batch[Tx]) HandleBatch(ctx context.Context, tx Tx, events []Event) error {
	return b.fn(ctx, tx, events)
}
