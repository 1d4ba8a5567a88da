// One store transaction of a commit: run the handlers, or a batch projection's batch handler
// (or dead-letter a skipped event),
// advance tracking, classify what failed, and publish what committed.

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// handlerError marks an error returned by the projection's handler for batch[index] (-1: the
// final flush of queued statements).
type handlerError struct {
	index int
	err   error
}

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// transaction is one store transaction that commit tries: a span, and how to run it.
type transaction struct {
	span
	isolate bool // flush after every event, so that a failing queued statement names its event
	partial bool // it commits only the events before a culprit: the rest stays pending
}

// try runs t. A handler error is returned as he, for commit to apply the policy; anything else
// is classified in res.
func (w *worker[Tx]) try(ctx, lead context.Context, t transaction) (res result, he *handlerError) {
	if err := lead.Err(); err != nil {
		return w.failed(ctx, lead, kindLeadership, context.Cause(lead)), nil
	}
	started := w.transactionStarted(t)
	start := time.Now()
	err := w.apply(lead, t)
	w.transactionEnded(started, err, lead.Err() != nil)
	if err == nil {
		w.committed(t, time.Since(start))
		return result{}, nil
	}
	switch {
	case lead.Err() != nil || errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrTransient):
		return w.failed(ctx, lead, kindStore, fmt.Errorf("projection %q: commit: %w", w.name, err)), nil
	case errors.As(err, &he):
		return result{}, he
	case errors.Is(err, tracking.ErrConflict):
		err = fmt.Errorf("projection %q: %w", w.name, err)
		if w.r.opts.Leader != nil {
			// A previous leader committed late (after this process took the lease): the
			// compare-and-set refused the batch; reload the position and go on.
			return w.failed(ctx, lead, kindConflict, err), nil
		}
		// Without leadership another instance is running the projection: stop.
		w.reportError(kindConflict, err)
		return result{out: outcomeStopped, err: err}, nil
	case errors.Is(err, tracking.ErrPositionTooLarge):
		err = fmt.Errorf("projection %q: %w", w.name, err)
		w.reportError(kindStore, err)
		return result{out: outcomeStopped, err: err}, nil
	}
	return w.failed(ctx, lead, kindStore, fmt.Errorf("projection %q: commit: %w", w.name, err)), nil
}

// apply runs t.batch in one store transaction that advances tracking from t.prev to t.next.
// With t.skip set, batch[0] is skipped with that cause instead of handled: dead-lettered when
// the store keeps dead letters. It refuses to commit once the lease (ctx) has ended.
func (w *worker[Tx]) apply(ctx context.Context, t transaction) error {
	return w.r.store.Apply(ctx, w.name, t.prev, t.next, func(ctx context.Context, tx Tx) error {
		flusher, _ := any(tx).(Flusher)
		w.flushes = flusher != nil
		bp, batched := w.p.(BatchProjection[Tx])
		parked := w.parkedIn(t)
		// rest is a batch projection's events to handle: those not skipped or parked, the
		// batch itself when none is.
		var rest []Event
		events := t.batch
		if batched {
			if t.skip == nil && parked == nil {
				rest, events = t.batch, nil
			} else {
				rest = make([]Event, 0, len(t.batch))
			}
		}
		for i, e := range events {
			if i == 0 && t.skip != nil {
				dl, ok := any(w.r.store).(DeadLetterer[Tx])
				if !ok {
					continue
				}
				if err := dl.DeadLetter(ctx, tx, w.base, e, t.skip); err != nil {
					return fmt.Errorf("dead-letter event %s at %v: %w", e.ID, e.Position, err)
				}
				if flusher != nil && t.isolate {
					if err := flusher.Flush(ctx); err != nil {
						return fmt.Errorf("dead-letter event %s at %v: %w", e.ID, e.Position, err)
					}
				}
				continue
			}
			if parked != nil && parked[i] {
				if err := w.parkEvent(ctx, tx, t, e); err != nil {
					return err
				}
				continue
			}
			if batched {
				rest = append(rest, e)
				continue
			}
			if err := w.handle(ctx, tx, e); err != nil {
				return &handlerError{index: i, err: err}
			}
			if flusher != nil && t.isolate {
				if err := flusher.Flush(ctx); err != nil {
					return &handlerError{index: i, err: err}
				}
			}
		}
		if batched && len(rest) > 0 {
			// At once: a failure is bisected by commit.
			if err := w.handleBatch(ctx, tx, bp, rest); err != nil {
				return &handlerError{index: -1, err: err}
			}
		}
		if flusher != nil {
			if err := flusher.Flush(ctx); err != nil {
				return &handlerError{index: -1, err: err}
			}
		}
		if ctx.Err() != nil { // the lease, or the drain time, ended: do not commit
			return fmt.Errorf("not committing the batch: %w", context.Cause(ctx))
		}
		return nil
	})
}

// committed publishes t, committed in d: status, reports, then the watermark.
func (w *worker[Tx]) committed(t transaction, d time.Duration) {
	obs := w.r.opts.Observer
	w.mu.Lock()
	w.st.Tracking, w.st.Position, w.st.LastProgress = t.next, t.next.Reached(), time.Now()
	if !t.partial {
		w.st.OldestPending = time.Time{}
		w.caughtUp = w.live
	}
	w.mu.Unlock()
	parked := w.parkedIn(t)
	events := len(t.batch)
	for _, p := range parked {
		if p {
			events--
		}
	}
	w.parkedCommitted(t, parked)
	if t.skip != nil && events > 0 {
		events--
		if _, ok := any(w.r.store).(DeadLetterer[Tx]); ok {
			obs.EventDeadLettered(FailedEvent{Projection: w.base, Partition: w.partitionName(), Event: t.batch[0], Err: t.skip, Policy: PolicySkip})
		} else {
			w.eventFailed(t.batch[0], t.skip, PolicySkip)
		}
	}
	obs.BatchCommitted(CommittedBatch{Projection: w.base, Partition: w.partitionName(), Events: events, Duration: d, State: t.next})
	w.recovered()
	w.setMark(t.next) // last, so waiters see status and reports up to date
}

// handleBatch calls the batch projection's handler, turning a panic into an error as handle does.
func (w *worker[Tx]) handleBatch(ctx context.Context, tx Tx, bp BatchProjection[Tx], events []Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch handler panicked: %v", r)
		}
	}()
	return bp.HandleBatch(ctx, tx, events)
}

// handle calls the projection's handler, turning a panic into an error so that a poison event
// is treated by the error policy instead of ending the process.
func (w *worker[Tx]) handle(ctx context.Context, tx Tx, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return w.p.Handle(ctx, tx, e)
}
