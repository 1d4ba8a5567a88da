// Online reset: Runner.Reset hands a request to the worker, which rewinds the view and its
// tracking to the projection's start in one transaction while paused.

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// ErrNotLeader is wrapped by Runner.Reset's error when this process does not lead the
// projection: a standby (the replica that leads it must reset it), or a runner not running.
var ErrNotLeader = errors.New("this process does not lead the projection")

// Reset rebuilds a projection online. It pauses the projection's worker (a pending batch is
// dropped uncommitted, the subscription closed, the lease kept), then in one store transaction
// runs fn (emptying the view; nil for none) and rewinds the projection's tracking to its
// configured start (through the store's Rewinder, or by compare-and-set through Store.Apply),
// resets the in-process watermark and restarts the projection from that start. It works on a stopped projection too, and
// clears its failure. On error nothing changed and the projection goes on as before.
//
// It returns an error wrapping tracking.ErrUnknownProjection for an unknown name and one
// wrapping ErrNotLeader when this process does not lead the projection. The worker takes the
// reset between batches or retries; until then Reset waits, within ctx.
func (r *Runner[Tx]) Reset(ctx context.Context, projection string, fn func(ctx context.Context, tx Tx) error) error {
	r.mu.Lock()
	w, ok := r.byName[projection]
	_, partitioned := r.groups[projection]
	r.mu.Unlock()
	if partitioned || (ok && w.part != nil) {
		return fmt.Errorf("reset %q: %w", projection, ErrPartitionedReset)
	}
	if !ok {
		return fmt.Errorf("reset %q: %w", projection, tracking.ErrUnknownProjection)
	}
	req := &resetRequest[Tx]{ctx: ctx, fn: fn, done: make(chan error, 1)}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !w.status().Leader {
			return fmt.Errorf("reset %q: %w", projection, ErrNotLeader)
		}
		select {
		case w.resets <- req:
			return <-req.done // the worker answers within ctx
		case <-tick.C: // leadership may have been lost meanwhile
		case <-ctx.Done():
			return fmt.Errorf("reset %q: the projection did not pause in time: %w", projection, ctx.Err())
		}
	}
}

// ErrPartitionedReset is wrapped by Runner.Reset's error for a partitioned projection (or one
// of its partitions): its partitions may be led by several processes, so it is reset offline
// (projector reset with the daemons stopped) or rebuilt.
var ErrPartitionedReset = errors.New("a partitioned projection is not reset online: stop the daemons and reset it offline, or rebuild it")

// resetRequest is a Runner.Reset call waiting for the worker.
type resetRequest[Tx any] struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx Tx) error
	done chan error // capacity 1: the worker never blocks on the answer
}

// runReset runs req while the projection is paused (no session runs, its subscription is
// closed, its lease held) and answers it. In one store transaction it runs req.fn and rewinds
// tracking from the committed state to the projection's start; then the watermark is reset,
// the status shows the start and any failure is cleared. On error nothing changed.
func (w *worker[Tx]) runReset(ctx, lead context.Context, req *resetRequest[Tx]) error {
	err := w.rewind(ctx, lead, req)
	req.done <- err
	return err
}

func (w *worker[Tx]) rewind(ctx, lead context.Context, req *resetRequest[Tx]) error {
	if ctx.Err() != nil {
		return fmt.Errorf("reset %q: the runner is shutting down", w.name)
	}
	// The transaction runs under the lease (the store checks it before committing) and ends
	// with the caller's context or a shutdown.
	rctx, cancel := context.WithCancel(lead)
	defer cancel()
	defer context.AfterFunc(req.ctx, cancel)()
	defer context.AfterFunc(ctx, cancel)()
	start, _, err := w.startState(rctx)
	if err != nil {
		return fmt.Errorf("reset %q: %w", w.name, err)
	}
	prev, err := w.rewindTracking(rctx, start, func(ctx context.Context, tx Tx) error {
		if req.fn != nil {
			if err := req.fn(ctx, tx); err != nil {
				return fmt.Errorf("reset the view: %w", err)
			}
		}
		if pk, ok := w.parker(); ok {
			if err := pk.ClearParked(ctx, tx, w.parkOwner()); err != nil {
				return fmt.Errorf("clear the parked events: %w", err)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("not committing the reset: %w", context.Cause(ctx))
		}
		return nil
	})
	if err != nil {
		if lead.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return fmt.Errorf("reset %q: rewind from %v to %v: %w", w.name, prev, start, err)
	}
	w.skip = nil
	w.parked = nil
	w.publishParked()
	w.r.wm.Reset(w.name)
	w.mu.Lock()
	w.st.Tracking, w.st.Position, w.st.Failed, w.st.OldestPending = start, start.Reached(), nil, time.Time{}
	w.st.LastProgress = time.Now()
	w.caughtUp, w.fault = false, ""
	w.mu.Unlock()
	w.setMark(start)
	return nil
}

// rewindTracking runs reset and moves the projection's tracking to start in one transaction:
// through the store's Rewind when it has one, otherwise by compare-and-set from the committed
// state through Apply. It returns the state the projection had.
func (w *worker[Tx]) rewindTracking(ctx context.Context, start tracking.State, reset func(ctx context.Context, tx Tx) error) (tracking.State, error) {
	if rw, ok := any(w.r.store).(Rewinder[Tx]); ok {
		return rw.Rewind(ctx, w.name, start, reset)
	}
	prev, _, err := w.r.store.Load(ctx, w.name)
	if err != nil {
		return prev, fmt.Errorf("load tracking: %w", err)
	}
	return prev, w.r.store.Apply(ctx, w.name, prev, start, reset)
}
