// Commit and poison isolation: a batch is committed whole if it can be; a handler failure is
// traced to its event, the events before it commit once, and the error policy decides about
// the event (stop, retry, or skip it into the dead letters).

package projection

import (
	"context"
	"fmt"

	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/tracking"
)

// span is what commit applies: the events of batch, and the advance of tracking from prev to
// next that commits them.
type span struct {
	prev, next tracking.State
	batch      []Event
	// skip, when set, is why batch[0] is skipped instead of handled: it is dead-lettered with
	// that cause when the store keeps dead letters (an operator's Skip, or PolicySkip).
	skip error
	// park holds the events whose failure parks their stream under PolicyPark, by event ID,
	// with the handler's error: they, and the later events of their streams, are parked.
	park map[string]error
}

// commit applies s, applying the error policy to handler failures. A failing batch is re-run
// flushing after every event to find the culprit when the store queues statements, or bisected
// (see bisect) for a BatchProjection; the events
// before the culprit are then committed once, and the policy decides about the culprit. Every
// successful transaction is reported and published at once, so a failure after a partial
// commit loses nothing (the next session reloads).
func (w *worker[Tx]) commit(ctx, lead context.Context, s span) result {
	pol := w.opts.OnError
	pb := backoff.New(pol.Backoff, pol.MaxBackoff)
	// A skipped first event is flushed on its own, so that a failure after it names its event.
	t := transaction{span: s, isolate: s.skip != nil}
	var (
		retries int
		culprit string
	)
	for {
		res, he := w.try(ctx, lead, t)
		if he == nil {
			if res.out == outcomeOK && retries > 0 {
				w.recovered()
			}
			return res
		}
		if _, batched := w.p.(BatchProjection[Tx]); batched && len(t.batch) > 1 {
			var (
				end  *result
				tail transaction
			)
			if tail, he, end = w.bisect(ctx, lead, t, he); end != nil {
				return *end
			}
			t = tail
			if he == nil {
				continue // the failure went away once the events before it committed
			}
		} else if !t.isolate && w.flushes && len(t.batch) > 1 {
			t.isolate = true // the error may surface at a later event than the one that queued it
			continue
		}
		i := he.index
		if i < 0 {
			i = len(t.batch) - 1
		}
		if pr := w.parkedIn(t); pol.Policy == PolicyPark && (pr == nil || !pr[i]) {
			// Park the culprit's stream and try again: the other streams go on.
			e := t.batch[i]
			w.eventFailed(e, he.err, PolicyPark)
			t.park = withPark(t.park, e, he.err)
			continue
		}
		if i > 0 {
			// Commit the good events before the culprit, once.
			good := t
			good.next, good.batch, good.partial = tracking.State{Last: t.batch[i-1].Position}, t.batch[:i], true
			gres, ghe := w.try(ctx, lead, good)
			if ghe != nil {
				continue // a handler of those events failed this time: isolate again
			}
			if gres.out != outcomeOK {
				return gres
			}
			t.prev, t.batch, t.skip = good.next, t.batch[i:], nil
		}
		e := t.batch[0]
		if e.ID != culprit {
			culprit, retries = e.ID, 0
		}
		ferr := fmt.Errorf("projection %q: event %s (%s) at %v in stream %q revision %d: %w", w.name, e.ID, e.Type, e.Position, e.Stream, e.Revision, he.err)
		switch {
		case pol.Policy == PolicySkip:
			w.eventFailed(e, he.err, PolicySkip)
			t.skip = he.err
			continue
		case pol.Policy == PolicyRetry && retries < pol.Retries:
			retries++
			w.eventFailed(e, he.err, PolicyRetry)
			w.failure(kindHandler, ferr)
			if !sleepLeading(ctx, lead, pb.Next()) {
				return w.failed(ctx, lead, kindLeadership, context.Cause(lead))
			}
			continue
		}
		w.eventFailed(e, he.err, PolicyStop)
		w.update(func(st *Status) {
			st.Failed = &Failure{Position: e.Position, EventID: e.ID, Type: e.Type, Stream: e.Stream, Revision: e.Revision, Error: he.err.Error()}
		})
		return result{out: outcomeStopped, err: ferr}
	}
}

// bisect narrows the failure he of t, a batch projection's span whose batch failed as a whole,
// to one event. Each attempt is a transaction of its own: it tries the first half of the events
// known to fail, commits it (once) when it succeeds and goes on with the rest, and otherwise
// narrows to that half, until one event fails on its own. It returns the span from that event
// on, with the event's own error (index 0). A nil error means the failure went away once the
// events before it committed: the span holds what is left to commit. A non-nil result ends
// the commit: a store failure, or everything committed.
func (w *worker[Tx]) bisect(ctx, lead context.Context, t transaction, he *handlerError) (transaction, *handlerError, *result) {
	n := len(t.batch) // t.batch[:n] fails
	fresh := true     // he is the error of t.batch[:n] as tracking now stands
	for n > 1 || !fresh {
		k := max(n/2, 1)
		part := t
		if k < len(t.batch) {
			part.next, part.batch, part.partial = tracking.State{Last: t.batch[k-1].Position}, t.batch[:k], true
		}
		res, phe := w.try(ctx, lead, part)
		switch {
		case phe != nil:
			n, he, fresh = k, phe, true
			continue
		case res.out != outcomeOK || k == len(t.batch):
			return t, nil, &res
		}
		t.prev, t.batch, t.skip = part.next, t.batch[k:], nil
		n, fresh = n-k, false
		if n == 0 {
			return t, nil, nil
		}
	}
	he.index = 0
	return t, he, nil
}
