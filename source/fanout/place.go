// Where a subscriber reads: the primary shared read, a new primary shared read that also reads
// its topics, or its own subscription; and the move of a subscriber of an older shared read to
// the primary one.

package fanout

import (
	"maps"
	"slices"
)

// place decides where w reads, with the mutex held: attached to the primary shared read
// (attached true), attached to a new primary shared read that the caller must start without
// the mutex (started set), or on its own (both zero).
//
// A new shared read starts when there is none, or when the primary one does not read all of
// w's topics but w is near it (at most MaxLead behind it, nor more than MaxLead ahead of it
// while it catches up): the new one reads the topics of every open subscription from w's
// state, and the subscribers of the old one move to it as soon as they can attach (see move),
// the old one ending with its last subscriber. A subscriber that is not near reads on its own
// and tries again after each message it receives.
func (s *Source) place(w *subscription) (started *hub, attached bool) {
	return s.placeOr(w, true)
}

// placeOr is place, but it starts no shared read when there is none unless mayStart: a
// subscriber reading on its own does not start one alone (which would read the topics of every
// open subscription for it alone), only one that takes over from a primary shared read.
func (s *Source) placeOr(w *subscription, mayStart bool) (started *hub, attached bool) {
	if s.hub == nil && !mayStart {
		return nil, false
	}
	if h := s.hub; h != nil {
		if seq, ok := h.attachable(w.list, &w.cov); ok {
			h.attach(w, seq)
			return nil, true
		}
		if h.readsAll(w.list) || !h.near(&w.cov) {
			return nil, false
		}
	}
	nh := newHub(s, w.ctx, s.inUse(), w.cov.resume())
	if old := s.hub; old != nil {
		old.signalData() // its idle subscribers try to move
	}
	s.hub = nh
	nh.attach(w, 0)
	return nh, true
}

// use counts the topics of a subscription opening (delta 1) or closing (delta -1).
func (s *Source) use(topics []string, delta int) {
	for _, t := range topics {
		if s.open[t] += delta; s.open[t] <= 0 {
			delete(s.open, t)
		}
	}
}

// inUse returns Options.Topics and the topics of the open subscriptions.
func (s *Source) inUse() []string {
	return append(slices.Collect(maps.Keys(s.open)), s.opts.Topics...)
}

// readsAll reports whether h reads every topic of topics.
func (h *hub) readsAll(topics []string) bool {
	for _, t := range topics {
		if !h.topics[t] {
			return false
		}
	}
	return true
}

// near reports whether a reader whose coverage is c is at most MaxLead behind h, and, while h
// catches up, at most MaxLead ahead of it.
func (h *hub) near(c *coverage) bool {
	r, hr := c.reach(), h.cov.reach()
	return r+h.src.opts.MaxLead >= hr && (h.live || r <= hr+h.src.opts.MaxLead)
}

// move attaches w, which reads a shared read that is no longer the primary one, to the primary
// one if it can now, and reports whether it did. Called after each message w takes, and while
// it waits for one.
func (w *subscription) move() bool {
	s := w.src
	s.mu.Lock()
	old, p := w.hub, s.hub
	if old == nil || p == nil || p == old || w.closed {
		s.mu.Unlock()
		return false
	}
	seq, ok := p.attachable(w.list, &w.cov)
	if !ok {
		s.mu.Unlock()
		return false
	}
	stopped := old.leave(w)
	p.attach(w, seq)
	s.mu.Unlock()
	if stopped {
		<-old.done
	}
	return true
}
