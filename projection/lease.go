// The lease loop: wait as a standby, lead while the lease lasts, back off after faults, and
// wait for an operator's command while stopped.

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/internal/backoff"
)

// delay is the backoff before the next attempt after err: the longest one for a permanent
// error.
func delay(bo *backoff.Backoff, err error) time.Duration {
	if errors.Is(err, ErrPermanent) {
		return bo.Longest()
	}
	return bo.Next()
}

// run leads the projection (or waits as a standby) until ctx ends. hard outlives ctx by the
// drain timeout; leases and commits run under it.
func (w *worker[Tx]) run(ctx, hard context.Context) {
	bo := backoff.New(w.r.opts.MinBackoff, w.r.opts.MaxBackoff)
	defer func() {
		w.mu.Lock()
		w.st.Leader, w.st.OldestPending, w.caughtUp, w.fault = false, time.Time{}, false, ""
		w.mu.Unlock()
		w.setState(StateDone, nil)
	}()
	for ctx.Err() == nil {
		lead, release, ok := w.acquire(ctx, hard, bo)
		if !ok {
			continue
		}
		w.update(func(st *Status) { st.Leader = true })
		lost := w.leading(ctx, lead, bo)
		release()
		w.mu.Lock()
		w.st.Leader, w.st.OldestPending, w.st.Failed, w.caughtUp, w.fault = false, time.Time{}, nil, false, ""
		w.st.ParkedStreams = 0 // the replica that leads the projection now knows them
		w.phase = StateStandby
		w.mu.Unlock()
		w.parked = nil
		if lost != nil && ctx.Err() == nil {
			err := fmt.Errorf("projection %q: %w", w.name, lost)
			if !errors.Is(lost, ErrHandedOver) { // a planned move is no fault
				w.reportError(kindLeadership, err)
			}
			w.setState(StateStandby, err)
		}
	}
}

// acquire waits as a standby until this process leads the projection. ok is false when ctx
// ended or acquiring failed (after a backoff).
func (w *worker[Tx]) acquire(ctx, hard context.Context, bo *backoff.Backoff) (lead context.Context, release func(), ok bool) {
	l := w.r.opts.Leader
	if l == nil {
		return hard, func() {}, true
	}
	w.enter(StateStandby)
	// The lease must outlive ctx by the drain timeout (it derives from hard), but waiting for it
	// must end with ctx.
	actx, cancel := context.WithCancel(hard)
	stop := context.AfterFunc(ctx, cancel)
	lead, rel, err := l.Acquire(actx, w.name)
	if !stop() {
		if err == nil {
			rel()
		}
		cancel()
		return nil, nil, false
	}
	if err != nil {
		cancel()
		err = fmt.Errorf("projection %q: acquire the leadership: %w", w.name, err)
		w.failure(kindLeadership, err)
		sleep(ctx, delay(bo, err))
		return nil, nil, false
	}
	if w.faultIs(kindLeadership) {
		w.recovered()
	}
	return lead, func() { rel(); cancel() }, true
}

// leading runs sessions while the lease lasts, retrying transient faults and waiting for an
// operator's command while stopped. It returns the cause when the lease was lost, nil when ctx
// ended.
func (w *worker[Tx]) leading(ctx, lead context.Context, bo *backoff.Backoff) error {
	for {
		res := w.session(ctx, lead, bo)
		switch res.out {
		case outcomeEnded, outcomeOK:
			return nil
		case outcomeLost:
			return lostCause(lead, res.err)
		case outcomeTransient:
			if !w.backOff(ctx, lead, bo, res) {
				return ended(ctx, lead)
			}
		case outcomeReset:
			req := w.reset
			w.reset = nil
			if w.commandReset(ctx, lead, req) {
				bo.Reset()
			}
		case outcomeStopped:
			if !w.stopped(ctx, lead, bo, res.err) {
				return ended(ctx, lead)
			}
		}
	}
}

// ended is what leading returns once ctx or the lease has ended: nil for ctx, else the cause
// of the lost lease.
func ended(ctx, lead context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return lostCause(lead, nil)
}

// lostCause is why the lease was lost: the lease context's cause once it has ended, else err
// (what refused the work), else ErrLeadershipLost.
func lostCause(lead context.Context, err error) error {
	if lead.Err() != nil {
		return context.Cause(lead)
	}
	if err == nil {
		err = ErrLeadershipLost
	}
	return err
}

// backOff shows the transient fault of res and waits the backoff before the next session,
// running a reset that comes meanwhile. It reports false when ctx or the lease ended first.
func (w *worker[Tx]) backOff(ctx, lead context.Context, bo *backoff.Backoff, res result) bool {
	w.mu.Lock()
	w.caughtUp = false // unknown until the subscription catches up again
	w.mu.Unlock()
	w.failure(res.kind, res.err)
	t := time.NewTimer(delay(bo, res.err))
	defer t.Stop()
	select {
	case <-t.C:
	case req := <-w.resets:
		if w.commandReset(ctx, lead, req) {
			bo.Reset()
		}
	case req := <-w.parkReqs:
		w.runParkRequest(ctx, lead, req)
	case <-ctx.Done():
		return false
	case <-lead.Done():
		return false
	}
	return true
}

// stopped holds a projection halted by err until an operator's Resume or Skip, or a reset
// that succeeds, restarts it. It reports false when ctx or the lease ended first.
func (w *worker[Tx]) stopped(ctx, lead context.Context, bo *backoff.Backoff, err error) bool {
	w.mu.Lock()
	for len(w.ctl) > 0 { // a command left from an earlier stop that ended otherwise
		<-w.ctl
	}
	w.pending, w.fault = false, ""
	w.mu.Unlock()
	w.setState(StateStopped, err)
	for {
		select {
		case c := <-w.ctl:
			w.mu.Lock()
			w.pending = false
			failed := w.st.Failed
			w.st.Failed = nil
			w.mu.Unlock()
			if c == CommandSkip {
				w.skip = failed
			}
			w.commanded = c
			bo.Reset()
			return true
		case req := <-w.resets:
			if w.commandReset(ctx, lead, req) {
				bo.Reset()
				return true
			}
			// A failed reset changed nothing: the projection stays stopped.
		case req := <-w.parkReqs:
			w.runParkRequest(ctx, lead, req)
		case <-ctx.Done():
			return false
		case <-lead.Done():
			return false
		}
	}
}

// commandReset runs the operator's reset req (runReset), reporting whether it succeeded; the
// state change that follows a successful one reports CommandReset.
func (w *worker[Tx]) commandReset(ctx, lead context.Context, req *resetRequest[Tx]) bool {
	if w.runReset(ctx, lead, req) != nil {
		return false
	}
	w.commanded = CommandReset
	return true
}

// sleep waits d or until ctx ends, reporting whether it waited the full d.
func sleep(ctx context.Context, d time.Duration) bool {
	return sleepLeading(ctx, ctx, d)
}

// sleepLeading waits d, reporting false if ctx or the lease (lead) ends first.
func sleepLeading(ctx, lead context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-lead.Done():
		return false
	}
}

// ErrHandedOver is wrapped by the cause of a lease that a Leader ended because another
// replica is to lead the projection (a planned move, such as a rebalance when a replica
// joins): the runner finishes or rolls back its batch and goes back to standby without
// reporting a fault.
var ErrHandedOver = errors.New("leadership handed over")
