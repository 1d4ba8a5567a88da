// A subscriber: it reads the shared read's ring at its cursor, or its own subscription of the
// underlying Source until it can attach, and delivers what its own filtered subscription would.

package fanout

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// subscription implements projection.Subscription for one subscriber.
type subscription struct {
	src    *Source
	ctx    context.Context // its lifetime, given to Subscribe: its own subscriptions use it
	list   []string
	topics map[string]bool
	done   chan struct{} // closed by Close
	once   sync.Once

	// Used only by the goroutine calling Next.
	cov      coverage
	caughtUp bool  // a caught-up message was delivered
	failed   error // the shared read's failure, once delivered
	// taken holds entries taken from the primary shared read at once (up to takeRun), of which
	// those from next on are still to deliver: one lock of the Source per run, not per entry.
	taken []entry
	next  int

	// Guarded by src.mu.
	hub     *hub // the shared read it is attached to; nil when it is not
	cursor  uint64
	takenAt time.Time               // when it last took an entry (or attached)
	own     projection.Subscription // its own subscription, when not attached
	closed  bool
	unbind  func() bool // stops the close at the end of ctx
}

func newSubscription(s *Source, ctx context.Context, topics []string, from tracking.State) *subscription {
	set := make(map[string]bool, len(topics))
	for _, t := range topics {
		set[t] = true
	}
	return &subscription{src: s, ctx: ctx, list: slices.Clone(topics), topics: set, done: make(chan struct{}), cov: coverage{from: from}}
}

// watch closes w once its context ends.
func (w *subscription) watch() {
	w.src.mu.Lock()
	defer w.src.mu.Unlock()
	w.unbind = context.AfterFunc(w.ctx, func() { _ = w.Close() })
}

// detach lets w go from its shared read, which it was holding back: its next Next resumes on
// its own subscription. Called by the hub with the mutex held.
func (w *subscription) detach() {
	delete(w.hub.subs, w)
	w.hub = nil
}

// Next implements projection.Subscription.
func (w *subscription) Next(ctx context.Context) (projection.Message, error) {
	for {
		if w.failed != nil {
			return projection.Message{}, w.failed
		}
		if err := ctx.Err(); err != nil {
			return projection.Message{}, err
		}
		m, ok, err := w.step(ctx)
		if err != nil || ok {
			return m, err
		}
	}
}

// step takes one message from the shared read or from w's own subscription, or waits for one;
// ok reports whether m is to be delivered.
func (w *subscription) step(ctx context.Context) (m projection.Message, ok bool, err error) {
	if w.next < len(w.taken) {
		return w.deliverTaken()
	}
	s := w.src
	s.mu.Lock()
	if w.closed {
		s.mu.Unlock()
		return m, false, errClosed
	}
	if h := w.hub; h != nil {
		if w.cursor < h.head {
			primary := h == s.hub || s.hub == nil
			if primary {
				// The entries ready, up to takeRun, delivered by the next calls without
				// the lock (the read stays primary for them: a move waits until they are
				// delivered).
				w.taken, w.next = w.taken[:0], 0
				for n := 0; n < takeRun && w.cursor < h.head; n++ {
					w.taken = append(w.taken, *h.at(w.cursor))
					w.cursor++
				}
				w.takenAt = time.Now()
				h.signalSpace()
				s.mu.Unlock()
				return w.deliverTaken()
			}
			e := *h.at(w.cursor)
			w.cursor++
			w.takenAt = time.Now()
			h.signalSpace()
			s.mu.Unlock()
			if e.err != nil {
				w.failed = e.err
				return m, false, e.err
			}
			ok = w.accept(&e.msg)
			w.move()
			return e.msg, ok, nil
		}
		if h.live && !w.caughtUp {
			// It attached after the read caught up, and has now read all it holds.
			w.caughtUp = true
			at := h.liveAt
			s.mu.Unlock()
			return projection.Message{Kind: projection.CaughtUpMessage, Time: at}, true, nil
		}
		data := h.wait()
		var primary <-chan struct{} // for a read that is no longer the primary one
		if p := s.hub; p != nil && p != h {
			primary = p.wait()
		}
		s.mu.Unlock()
		if primary != nil && w.move() {
			return m, false, nil
		}
		select {
		case <-data:
			return m, false, nil
		case <-primary:
			return m, false, nil
		case <-w.done:
			return m, false, errClosed
		case <-ctx.Done():
			return m, false, ctx.Err()
		}
	}
	own := w.own
	s.mu.Unlock()
	if own == nil {
		return m, false, w.resumeOnOwn()
	}
	if m, err = own.Next(ctx); err != nil {
		return m, false, err
	}
	ok = w.accept(&m)
	w.handOver()
	return m, ok, nil
}

// takeRun is the most entries a subscriber takes from the primary shared read's ring at once.
const takeRun = 32

// deliverTaken delivers the next of the entries w has taken from the ring (see taken).
func (w *subscription) deliverTaken() (m projection.Message, ok bool, err error) {
	select {
	case <-w.done:
		w.taken, w.next = w.taken[:0], 0
		return m, false, errClosed
	default:
	}
	e := &w.taken[w.next]
	w.next++
	if e.err != nil {
		w.failed = e.err
		return m, false, e.err
	}
	m = e.msg
	*e = entry{} // the event's data is not kept beyond its delivery
	return m, w.accept(&m), nil
}

// accept records m as delivered if w's own filtered subscription would deliver it now.
func (w *subscription) accept(m *projection.Message) bool {
	if m.Kind == projection.CaughtUpMessage {
		if w.caughtUp {
			return false
		}
		w.caughtUp = true
		return true
	}
	return w.cov.take(m, w.topics)
}

// resumeOnOwn gives w, detached from the shared read, its own subscription from what it has
// been through.
func (w *subscription) resumeOnOwn() error {
	s := w.src
	own, err := s.under.Subscribe(w.ctx, w.list, w.cov.resume())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.closed {
		_ = own.Close()
		return errClosed
	}
	w.own = own
	return nil
}

// handOver attaches w, which reads on its own, to the primary shared read, or to a new one it
// starts in its place (see Source.place), if it can now, and then closes its own subscription. When the new
// shared read cannot start, w goes on on its own.
func (w *subscription) handOver() {
	s := w.src
	s.mu.Lock()
	own := w.own
	if w.closed || own == nil {
		s.mu.Unlock()
		return
	}
	started, attached := s.placeOr(w, false)
	if !attached {
		s.mu.Unlock()
		return
	}
	w.own = nil
	s.mu.Unlock()
	if started != nil && s.start(w.ctx, started, w) != nil {
		s.mu.Lock()
		if !w.closed {
			w.own, own = own, nil
		}
		s.mu.Unlock()
	}
	if own != nil {
		_ = own.Close()
	}
}

// Close implements projection.Subscription: it closes w's own subscription, or leaves the
// shared read, ending it (and waiting for its goroutine) if w was its last subscriber.
func (w *subscription) Close() error {
	w.once.Do(func() {
		s := w.src
		s.mu.Lock()
		w.closed = true
		close(w.done)
		s.use(w.list, -1)
		own, unbind := w.own, w.unbind
		w.own = nil
		var stopped *hub
		if h := w.hub; h != nil && h.leave(w) {
			stopped = h
		}
		s.mu.Unlock()
		if unbind != nil {
			unbind()
		}
		if own != nil {
			_ = own.Close()
		}
		if stopped != nil {
			<-stopped.done
		}
	})
	return nil
}
