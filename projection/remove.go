// Projections that start and stop on their own while the Runner runs: each projection's
// workers run as a unit, with its own context and drain, so Remove stops one projection and
// Add starts one without disturbing the others.

package projection

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// unit is one projection's workers: one, or one per partition. They start together and stop
// together.
type unit[Tx any] struct {
	name    string
	workers []*worker[Tx]
	done    chan struct{} // closed (under Runner.mu) once its workers have ended

	// Guarded by Runner.mu.
	cancel   context.CancelFunc // ends the unit's context; nil until it has started
	removing bool               // Remove was called: forget it once its workers have ended
}

// start runs u's workers under a context of Run's. r.mu is held, r.running is set and r.closed
// is not.
func (r *Runner[Tx]) start(u *unit[Tx]) {
	ctx, cancel := context.WithCancel(r.runCtx)
	u.cancel = cancel
	r.unitsWG.Add(1)
	go func() {
		defer r.unitsWG.Done()
		defer cancel()
		r.runUnit(ctx, u)
	}()
}

// runUnit runs u's workers until ctx ends, giving the batches in flight the drain timeout to
// commit, then closes u.done, and forgets u when it is being removed.
func (r *Runner[Tx]) runUnit(ctx context.Context, u *unit[Tx]) {
	// hard outlives ctx by the drain timeout: commits run under it (or under a lease derived
	// from it), so a cancel lets the batch in flight finish.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	finished := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		if r.opts.DrainTimeout == 0 {
			cancelHard()
			return
		}
		t := time.NewTimer(r.opts.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelHard()
		case <-finished:
		}
	})
	var workersWG sync.WaitGroup
	for _, w := range u.workers {
		workersWG.Go(func() { w.run(ctx, hard) })
	}
	workersWG.Wait()
	close(finished)
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	close(u.done)
	if u.removing {
		r.forget(u)
	}
}

// Remove stops projection (all its partitions, when it is partitioned) while the Runner runs,
// and forgets it; the other projections go on undisturbed. Its workers finish and commit the
// batch in flight within Options.DrainTimeout (or roll it back after it), close their
// subscriptions and release their leases, so another replica may take them. Remove returns once
// they have ended and the projection is gone from Status; a projection of the same name may then
// be added again (Add), such as its next version.
//
// Waits (Wait) already blocked on the removed projection keep waiting, for a projection added
// again under its name: its in-process watermark is forgotten, so they are answered by the
// position the new projection reads or commits, never by the removed one's. A Wait that starts
// while no projection has the name fails with tracking.ErrUnknownProjection.
//
// Before Run, Remove only forgets the projection. It returns an error wrapping
// tracking.ErrUnknownProjection for a name that is not an added projection (a partition's name
// included: a partitioned projection is removed as a whole), and ctx's error when ctx ends
// before the workers have: they still end, within the drain timeout, and the projection is
// forgotten then.
func (r *Runner[Tx]) Remove(ctx context.Context, projection string) error {
	r.mu.Lock()
	u, ok := r.units[projection]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("remove %q: %w", projection, tracking.ErrUnknownProjection)
	}
	if u.cancel == nil { // never started: Run has not run it
		r.forget(u)
		r.mu.Unlock()
		return nil
	}
	select {
	case <-u.done: // ended with Run's context
		r.forget(u)
		r.mu.Unlock()
		return nil
	default:
	}
	u.removing = true
	cancel := u.cancel
	r.mu.Unlock()
	cancel()
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("remove %q: its workers have not ended yet (they end within the drain timeout): %w", projection, ctx.Err())
	}
}

// forget drops u from the Runner: its status, its names and its watermarks (waking their
// waiters, who wait on for a projection added again under the name). r.mu is held.
func (r *Runner[Tx]) forget(u *unit[Tx]) {
	if r.units[u.name] != u {
		return // forgotten already
	}
	delete(r.units, u.name)
	delete(r.groups, u.name)
	kept := r.workers[:0:0]
	for _, w := range r.workers {
		if w.base != u.name {
			kept = append(kept, w)
		}
	}
	r.workers = kept
	for _, w := range u.workers {
		delete(r.byName, w.name)
		r.wm.Reset(w.name)
	}
	r.wm.Reset(u.name)
}
