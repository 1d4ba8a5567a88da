// One session of a leading worker: load tracking (or record the start), subscribe, pump the
// subscription's messages into a buffer and hand each to the batcher, committing a live batch
// once that buffer is empty, until something ends it.

package projection

import (
	"context"
	"fmt"
	"sync"

	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/tracking"
)

// session loads the tracked state, subscribes and consumes until something ends it.
func (w *worker[Tx]) session(ctx, lead context.Context, bo *backoff.Backoff) result {
	if ctx.Err() != nil {
		return result{out: outcomeEnded}
	}
	w.enter(StateStarting)
	// Reading tracking and the subscription end with ctx (a shutdown must not wait for an
	// unreachable server); only commits outlive it, under the lease, by the drain timeout.
	work, cancel := context.WithCancel(lead)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	state, ok, err := w.r.store.Load(work, w.name)
	if err != nil {
		return w.failed(ctx, lead, kindStore, fmt.Errorf("projection %q: load tracking: %w", w.name, err))
	}
	if !ok {
		var kind string
		if state, kind, err = w.initial(work); err != nil {
			return w.failed(ctx, lead, kind, err)
		}
	}
	if err := w.loadParked(work); err != nil {
		return w.failed(ctx, lead, kindStore, err)
	}
	w.setMark(state)
	w.update(func(st *Status) { st.Tracking, st.Position = state, state.Reached() })

	sub, err := w.r.source.Subscribe(work, w.topics, state)
	if err != nil {
		return w.failed(ctx, lead, kindSource, fmt.Errorf("projection %q: subscribe after %v: %w", w.name, state, err))
	}
	w.enter(StateCatchingUp)
	return w.consume(ctx, lead, work, sub, state, bo)
}

// startState computes the state of the projection's configured start.
func (w *worker[Tx]) startState(ctx context.Context) (tracking.State, string, error) {
	var s tracking.State
	switch w.opts.Start.Kind {
	case StartAfter:
		s.Last = w.opts.Start.Position
	case StartEnd:
		head, _, err := w.r.source.(Header).Head(ctx)
		if err != nil {
			return s, kindSource, fmt.Errorf("projection %q: read the head of $all: %w", w.name, err)
		}
		s.Last = head
	}
	return s, "", nil
}

// initial computes and records the state of a projection that has no tracking row. A
// partition without a row of its own starts where its projection's own row (the base name's,
// left by the projection before it was partitioned, or by a version swapped in) says the
// projection has got, if it has one: every event up to there is done for every key.
func (w *worker[Tx]) initial(ctx context.Context) (tracking.State, string, error) {
	if w.part != nil {
		s, ok, err := w.r.store.Load(ctx, w.base)
		if err != nil {
			return s, kindStore, fmt.Errorf("projection %q: load the tracking of %q: %w", w.name, w.base, err)
		}
		if ok && s != (tracking.State{}) {
			return w.record(ctx, s)
		}
	}
	s, kind, err := w.startState(ctx)
	if err != nil || s == (tracking.State{}) {
		return s, kind, err
	}
	return w.record(ctx, s)
}

// record creates the projection's tracking row at s.
func (w *worker[Tx]) record(ctx context.Context, s tracking.State) (tracking.State, string, error) {
	err := w.r.store.Apply(ctx, w.name, tracking.State{}, s, func(context.Context, Tx) error { return nil })
	if err != nil {
		// A conflict means another instance created the row: the retry reloads it.
		return s, kindStore, fmt.Errorf("projection %q: record the start at %v: %w", w.name, s.Last, err)
	}
	return s, "", nil
}

type received struct {
	m   Message
	err error
}

// consume reads sub (under work), batches, and commits, until ctx or the lease ends or something
// fails. When ctx ends it commits what it has (under the lease, which outlives ctx by the drain
// timeout).
//
// Batching is natural once live: the pump reads the subscription ahead into a buffer while a
// batch commits, and a live batch is committed as soon as that buffer is empty, so a live event
// waits only for the commit in flight, and a burst fills the next batch while one commits.
// While catching up, a batch waits up to BatchInterval to fill to BatchSize.
func (w *worker[Tx]) consume(ctx, lead, work context.Context, sub Subscription, state tracking.State, bo *backoff.Backoff) result {
	w.live = false
	msgs, stop := pump(work, sub, max(64, w.opts.BatchSize)) // the next batch arrives while one commits
	defer stop()
	b := &batcher[Tx]{w: w, ctx: ctx, lead: lead, work: work, bo: bo, state: state, batchTimer: stoppedTimer(), cpTimer: stoppedTimer(), probeTimer: stoppedTimer()}
	b.header, _ = w.r.source.(Header)
	b.prober, _ = w.r.source.(Prober)
	defer b.batchTimer.Stop()
	defer b.cpTimer.Stop()
	defer b.probeTimer.Stop()

	for {
		if ctx.Err() != nil {
			return b.drain()
		}
		var res result
		select {
		case <-ctx.Done():
			return b.drain()
		case <-lead.Done():
			return w.failed(ctx, lead, kindLeadership, context.Cause(lead))
		case <-b.batchTimer.C:
			res = b.flush()
		case <-b.cpTimer.C:
			b.cpArmed = false
			res = b.flush()
		case <-b.probeTimer.C:
			res = b.probe()
		case req := <-w.resets:
			// The pending batch is dropped uncommitted: the reset rebuilds from the start.
			w.reset = req
			return result{out: outcomeReset}
		case req := <-w.parkReqs:
			// The pending batch commits first (parking what it holds of the stream), so the
			// command takes effect before any later event of the stream.
			if res = b.flush(); res.out != outcomeOK {
				req.done <- parkAnswer{err: fmt.Errorf("%s %q stream %q: the pending batch did not commit, nothing was done: %v", req.cmd, w.name, req.stream, res.err)}
				return res
			}
			w.runParkRequest(ctx, lead, req)
		case rc := <-msgs:
			res = b.received(rc, msgs)
		}
		if res.out != outcomeOK {
			return res
		}
	}
}

// drainRun bounds how many messages the consume loop takes from the buffer one after another
// without waiting (received), before it looks at its timers, commands and contexts again.
const drainRun = 64

// received hands rc, and then the messages already waiting in msgs (up to drainRun in all), to
// the batcher, one after another, without a select per message. It stops at the first that
// does not leave the session going on, when ctx or the lease ends, and when msgs is empty.
func (b *batcher[Tx]) received(rc received, msgs <-chan received) result {
	for n := 1; ; n++ {
		res := b.message(rc, msgs)
		if res.out != outcomeOK || n == drainRun || b.ctx.Err() != nil || b.lead.Err() != nil {
			return res
		}
		select {
		case rc = <-msgs:
		default:
			return res
		}
	}
}

// message hands one received message to the batcher; a live batch commits at once when msgs
// holds no other message then.
func (b *batcher[Tx]) message(rc received, msgs <-chan received) result {
	w := b.w
	if rc.err != nil {
		if b.ctx.Err() != nil {
			return b.drain()
		}
		return w.failed(b.ctx, b.lead, kindDropped, fmt.Errorf("projection %q: subscription ended: %w", w.name, rc.err))
	}
	var res result
	switch m := rc.m; m.Kind {
	case EventMessage:
		res = b.event(m.Event)
	case CheckpointMessage:
		res = b.serverCheckpoint(m.Checkpoint)
	case CaughtUpMessage:
		res = b.caughtUpNow()
	default:
		return w.failed(b.ctx, b.lead, kindSource, fmt.Errorf("projection %q: subscription: unknown message kind %d", w.name, m.Kind))
	}
	if res.out == outcomeOK && b.caughtUp && b.pending() && len(msgs) == 0 {
		res = b.flush() // live, and nothing more is ready: the event waits for no timer
	}
	return res
}

// pump reads sub into the returned channel, which buffers up to buffer messages, until ctx ends
// or Next fails (that error is the last message). stop ends it, closes sub and waits for it.
func pump(ctx context.Context, sub Subscription, buffer int) (msgs <-chan received, stop func()) {
	subCtx, cancel := context.WithCancel(ctx)
	ch := make(chan received, buffer)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			m, err := sub.Next(subCtx)
			select { // without a select on subCtx while the buffer has room
			case ch <- received{m, err}:
				if err != nil {
					return
				}
				continue
			default:
			}
			select {
			case ch <- received{m, err}:
			case <-subCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	return ch, func() {
		cancel()
		_ = sub.Close()
		wg.Wait()
	}
}
