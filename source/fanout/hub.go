// A shared read: one underlying subscription whose messages go into a bounded ring that every
// attached subscriber reads at its own cursor.

package fanout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// entry is one message of a shared read, or its end.
type entry struct {
	msg projection.Message
	err error // the read's failure: the last entry
	// before is the position of the last event the read received before this entry (zero when
	// none): everything a subscriber attaching at this entry skips lies at or before it.
	before tracking.Position
}

// hub is a shared read of the events of topics from start. Its fields are guarded by the
// Source's mutex, except those set before it is shared.
type hub struct {
	src    *Source
	topics map[string]bool
	list   []string // topics, sorted
	start  tracking.State
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed once the reading goroutine has ended (or never started)

	ring       []entry
	base, head uint64   // the entries kept have sequence numbers in [base, head)
	cov        coverage // what the read has been through
	live       bool     // it has caught up
	liveAt     time.Time
	ended      bool // no entry follows: it failed (its error is the last entry) or stopped
	stopped    bool // its subscribers are gone, or it could not start
	subs       map[*subscription]struct{}
	data       chan struct{} // closed and replaced when an entry is added or the read ends
	awaited    bool          // a subscriber waits on data
	space      chan struct{} // closed and replaced when a cursor moves or a subscriber leaves
	waiting    bool          // the reading goroutine waits for space
	underlying projection.Subscription
}

func newHub(s *Source, ctx context.Context, topics []string, start tracking.State) *hub {
	list := slices.Clone(topics)
	slices.Sort(list)
	list = slices.Compact(list)
	set := make(map[string]bool, len(list))
	for _, t := range list {
		set[t] = true
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &hub{
		src: s, topics: set, list: list, start: start, ctx: hctx, cancel: cancel, done: make(chan struct{}),
		ring: make([]entry, s.opts.Window), cov: coverage{from: start},
		subs: map[*subscription]struct{}{}, data: make(chan struct{}), space: make(chan struct{}),
	}
}

// at returns the entry of sequence number seq, which must be kept.
func (h *hub) at(seq uint64) *entry { return &h.ring[seq%uint64(len(h.ring))] }

// attachable returns the sequence number from which a subscriber of topics whose coverage is c
// can read this hub's entries and get every event of its topics that it has not been through,
// in order; ok is false when it cannot (its topics are not all read here, the hub has ended or
// dropped entries it would need), or should not: it is more than MaxLead ahead of a hub still
// catching up, whose read would hold it back. Among the sequence numbers that work it returns the last, so that as
// few entries as possible are read twice. Called with the Source's mutex held.
func (h *hub) attachable(topics []string, c *coverage) (seq uint64, ok bool) {
	if h.ended || h.stopped {
		return 0, false
	}
	if !h.readsAll(topics) || !c.coversState(h.start) {
		return 0, false
	}
	if !h.live && c.reach() > h.cov.reach()+h.src.opts.MaxLead {
		return 0, false
	}
	skipped := func(seq uint64) tracking.Position {
		if seq == h.head {
			return h.cov.last
		}
		return h.at(seq).before
	}
	if p := skipped(h.base); !p.IsZero() && !c.covers(p) {
		return 0, false // it needs entries the ring no longer keeps
	}
	seq = h.head
	for seq > h.base {
		if p := skipped(seq); p.IsZero() || c.covers(p) {
			break
		}
		seq--
	}
	return seq, true
}

// attach adds w as a reader of the entries from seq on. Called with the Source's mutex held.
func (h *hub) attach(w *subscription, seq uint64) {
	h.subs[w] = struct{}{}
	w.hub, w.cursor, w.takenAt = h, seq, time.Now()
}

// leave removes w and reports whether that left the hub without subscribers, in which case the
// hub is stopped: the caller waits for h.done without the mutex. Called with the mutex held.
func (h *hub) leave(w *subscription) (stopped bool) {
	if w.hub != h {
		return false
	}
	delete(h.subs, w)
	w.hub = nil
	h.signalSpace()
	if len(h.subs) > 0 || h.stopped {
		return false
	}
	h.stop()
	return true
}

// stop ends the hub: no subscriber attaches any more, and its read ends. Called with the mutex
// held.
func (h *hub) stop() {
	h.stopped, h.ended = true, true
	if h.src.hub == h {
		h.src.hub = nil
	}
	h.cancel()
	h.signalData()
}

func (h *hub) signalData() {
	if h.awaited {
		close(h.data)
		h.data = make(chan struct{})
		h.awaited = false
	}
}

// wait returns the channel closed once an entry is added or the read ends. Called with the
// mutex held.
func (h *hub) wait() <-chan struct{} {
	h.awaited = true
	return h.data
}

func (h *hub) signalSpace() {
	if h.waiting {
		close(h.space)
		h.space = make(chan struct{})
		h.waiting = false
	}
}

// run reads the underlying subscription into the ring until the read fails or the hub stops.
func (h *hub) run(sub projection.Subscription) {
	defer close(h.done)
	defer func() { _ = sub.Close() }()
	for {
		m, err := sub.Next(h.ctx)
		if err != nil {
			err = fmt.Errorf("fanout: shared read of %d topics from %v: %w", len(h.list), h.start, err)
		}
		if !h.add(m, err) || err != nil {
			return
		}
	}
}

// add appends m (or the read's failure err) to the ring once there is room, and reports whether
// the read goes on.
func (h *hub) add(m projection.Message, err error) bool {
	s := h.src
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.stopped {
		return false
	}
	before := h.cov.last
	if err == nil && !h.cov.take(&m, nil) {
		return true // nothing new: a checkpoint behind the last one
	}
	for h.head-h.base == uint64(len(h.ring)) {
		wait, blocked := h.makeRoom()
		if !blocked {
			break
		}
		h.waiting = true
		space := h.space
		s.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-space:
		case <-timer.C:
		case <-h.ctx.Done():
		}
		timer.Stop()
		s.mu.Lock()
		if h.stopped {
			return false
		}
	}
	if h.stopped {
		return false // makeRoom detached the last subscriber
	}
	h.push(entry{msg: m, err: err, before: before})
	return err == nil
}

// push appends e to the ring, which has room for it, and wakes the subscribers. An error ends
// the read: new subscribers start another. Called with the mutex held.
func (h *hub) push(e entry) {
	*h.at(h.head) = e
	h.head++
	switch {
	case e.err != nil:
		h.ended = true
		if h.src.hub == h {
			h.src.hub = nil
		}
	case e.msg.Kind == projection.CaughtUpMessage:
		h.live, h.liveAt = true, e.msg.Time
	}
	h.signalData()
}

// makeRoom drops the oldest entry of a full ring unless an attached subscriber has still to read
// it. Such a subscriber that has taken nothing for StallAfter is detached: it goes on with its
// own subscription from what it has been through, and the others are no longer held back.
// Otherwise blocked is true and wait is how long until the first of them stalls.
func (h *hub) makeRoom() (wait time.Duration, blocked bool) {
	now := time.Now()
	wait = h.src.opts.StallAfter
	for w := range h.subs {
		if w.cursor != h.base {
			continue
		}
		if idle := now.Sub(w.takenAt); idle >= h.src.opts.StallAfter {
			w.detach()
			continue
		}
		blocked = true
		wait = min(wait, h.src.opts.StallAfter-now.Sub(w.takenAt))
	}
	if len(h.subs) == 0 {
		h.stop()
		return 0, false
	}
	if !blocked {
		h.base++
	}
	return wait, blocked
}
