// What a reader of the log has been through: the positions done for it, from which it can tell
// which events and checkpoints are new to it, whether it can take another read's stream over,
// and from which state it can resume on its own without losing an event.

package fanout

import (
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// coverage is the set of log positions a reader (a subscriber, or a shared read) has been
// through: those done according to the state it started from, those up to the last event it
// delivered (compared by commit, then prepare: events of one transaction share a commit
// position), and those strictly before the last checkpoint it delivered. Its stream being
// complete and in log order, every event of its topics at a covered position has been delivered
// or was done when it started. The set only grows, and is closed downwards: a position before a
// covered one is covered.
type coverage struct {
	from       tracking.State
	last       tracking.Position // last event delivered; zero when none
	checkpoint uint64            // last checkpoint delivered (exclusive); zero when none
}

// covers reports whether the event at p is done or has been delivered.
func (c *coverage) covers(p tracking.Position) bool {
	return c.from.Done(p.Commit) || p.Commit < c.checkpoint || (!c.last.IsZero() && p.Compare(c.last) <= 0)
}

// coversState reports whether every position done according to s is covered, whatever its
// prepare position: s's done positions are the commit positions up to s.Reached(), or none.
func (c *coverage) coversState(s tracking.State) bool {
	r := s.Reached()
	if !s.Done(r) {
		return true // nothing is done according to s
	}
	// All events of a commit position below the last event's lie before it.
	return c.from.Done(r) || r < c.checkpoint || r < c.last.Commit
}

// reach is the highest commit position all of whose events are covered, or zero when none is.
func (c *coverage) reach() uint64 {
	var r uint64
	if f := c.from.Reached(); c.from.Done(f) {
		r = f
	}
	if c.checkpoint > 0 {
		r = max(r, c.checkpoint-1)
	}
	if c.last.Commit > 0 {
		r = max(r, c.last.Commit-1)
	}
	return r
}

// resume is a state to subscribe from on one's own without losing an event: every position done
// according to it is covered. It is the starting state while nothing was delivered; after that,
// a checkpoint at the last event's commit position (not the event itself, whose transaction may
// hold further events at that commit position, which are then delivered again and dropped as
// covered), or past the last checkpoint or the starting state when those lie further.
func (c *coverage) resume() tracking.State {
	if c.last.IsZero() && c.checkpoint == 0 {
		return c.from
	}
	cp := max(c.checkpoint, c.last.Commit)
	if f := c.from.Reached(); c.from.Done(f) {
		if f+1 >= cp {
			return c.from // it says as much, and resuming after its event needs no look-up
		}
	}
	return tracking.State{Checkpoint: cp}
}

// take records m as delivered if it is new to a reader of topics (nil: every topic) whose
// coverage is c, and reports whether it is: an event of one of the topics at a position not
// covered, or a checkpoint past the last one. Other kinds of message are the caller's to judge.
func (c *coverage) take(m *projection.Message, topics map[string]bool) bool {
	switch m.Kind {
	case projection.EventMessage:
		if (topics != nil && !topics[m.Event.Type]) || c.covers(m.Event.Position) {
			return false
		}
		c.last = m.Event.Position
		return true
	case projection.CheckpointMessage:
		if m.Checkpoint <= c.checkpoint {
			return false
		}
		c.checkpoint = m.Checkpoint
		return true
	}
	return true
}
