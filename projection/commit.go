// Commit and poison isolation: a batch is committed whole if it can be; a handler failure is
// traced to its event, the events before it commit once, and the error policy decides about
// the event (stop, retry, or skip it into the dead letters).

package projection

import (
	"context"
	"fmt"

	"github.com/projector-dev/projector/tracking"
)

// skipFirst is an option of commit: the first event of the batch is not handled but skipped
// with cause (dead-lettered when the store keeps dead letters).
type skipFirst error

// commit applies batch and advances tracking from prev to next, applying the error policy to
// handler failures. A failing batch is re-run flushing after every event to find the culprit
// when the store queues statements; the events before the culprit are then committed once, and
// the policy decides about the culprit. Every successful transaction is reported and published
// at once, so a failure after a partial commit loses nothing (the next session reloads).
func (w *worker[Tx]) commit(ctx, lead context.Context, prev, next tracking.State, batch []Event, skip ...skipFirst) result {
	obs := w.r.opts.Observer
	pol := w.opts.OnError
	pb := backoff{min: pol.MinBackoff, max: pol.MaxBackoff}
	var (
		isolate bool // flush after every event, to find which one a failing statement belongs to
		dead    error
		retries int
		culprit string
	)
	if len(skip) > 0 {
		dead, isolate = skip[0], true
	}
	for {
		res, he := w.try(ctx, lead, prev, next, batch, isolate, dead, true)
		if he == nil {
			if res.out == outcomeOK && retries > 0 {
				w.recovered()
			}
			return res
		}
		if !isolate && w.flushes && len(batch) > 1 {
			isolate = true // the error may surface at a later event than the one that queued it
			continue
		}
		i := he.index
		if i < 0 {
			i = len(batch) - 1
		}
		if i > 0 {
			// Commit the good events before the culprit, once.
			pnext := tracking.State{Last: batch[i-1].Position}
			pres, phe := w.try(ctx, lead, prev, pnext, batch[:i], isolate, dead, false)
			if phe != nil {
				continue // a handler of those events failed this time: isolate again
			}
			if pres.out != outcomeOK {
				return pres
			}
			prev, batch, dead = pnext, batch[i:], nil
		}
		e := batch[0]
		if e.ID != culprit {
			culprit, retries = e.ID, 0
		}
		ferr := fmt.Errorf("projection %q: event %s (%s) at %v in stream %q revision %d: %w", w.name, e.ID, e.Type, e.Position, e.Stream, e.Revision, he.err)
		switch {
		case pol.Kind == PolicySkip:
			obs.EventFailed(w.name, e, he.err, string(PolicySkip))
			dead = he.err
			continue
		case pol.Kind == PolicyRetry && retries < pol.Retries:
			retries++
			obs.EventFailed(w.name, e, he.err, string(PolicyRetry))
			w.failure(kindHandler, ferr)
			if !sleepLeading(ctx, lead, pb.delay()) {
				return w.failed(ctx, lead, kindLeadership, context.Cause(lead))
			}
			continue
		}
		obs.EventFailed(w.name, e, he.err, string(PolicyStop))
		w.update(func(st *Status) {
			st.Failed = &Failure{Position: e.Position, EventID: e.ID, Type: e.Type, Stream: e.Stream, Revision: e.Revision, Error: he.err.Error()}
		})
		return result{out: outcomeStopped, err: ferr}
	}
}
