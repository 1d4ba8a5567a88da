// Package projectiontest provides an in-memory $all log that implements projection.Source, for
// testing runners and view stores without a KurrentDB server. It behaves like a filtered
// KurrentDB subscription: matching events in log order, checkpoints every CheckpointEvery events
// considered, a checkpoint then a caught-up message at the end of the log, and live delivery.
// Like KurrentDB (issue #4970), its checkpoints carry the position at which the next event will
// be written, so a consumer that resumes "after" a checkpoint would lose that event.
package projectiontest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// FirstPosition is the position of a Log's first event.
const FirstPosition = 1000

// Log is an in-memory $all log. The zero value is not ready; use NewLog.
type Log struct {
	// CheckpointEvery is how many events a subscription considers between checkpoints
	// (default 32, as KurrentDB's default search window).
	CheckpointEvery int

	mu        sync.Mutex
	events    []projection.Event
	revisions map[string]uint64
	next      uint64
	changed   chan struct{}
	subs      map[*subscription]bool
	failSubs  []error
	probes    int
	heads     int
	delivered int
}

var (
	_ projection.Source = (*Log)(nil)
	_ projection.Header = (*Log)(nil)
	_ projection.Prober = (*Log)(nil)
)

// NewLog returns an empty log.
func NewLog() *Log {
	return &Log{revisions: make(map[string]uint64), next: FirstPosition, changed: make(chan struct{}), subs: make(map[*subscription]bool)}
}

// Append writes an event of type typ to stream and returns it as stored.
func (l *Log) Append(stream, typ string, data []byte) projection.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	rev := l.revisions[stream]
	l.revisions[stream] = rev + 1
	e := projection.Event{
		ID: uuid.NewString(), Type: typ, Stream: stream, Revision: rev,
		Position: tracking.Position{Commit: l.next, Prepare: l.next},
		Data:     data, Metadata: []byte{}, ContentType: "application/octet-stream",
		Created: time.Now().UTC(),
	}
	l.events = append(l.events, e)
	l.next += uint64(100 + len(stream) + len(typ) + len(data))
	close(l.changed)
	l.changed = make(chan struct{})
	return e
}

// Next returns the position at which the next event will be written.
func (l *Log) Next() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Events returns a copy of the log.
func (l *Log) Events() []projection.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// Head implements projection.Header.
func (l *Log) Head(context.Context) (tracking.Position, time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heads++
	if len(l.events) == 0 {
		return tracking.Position{}, time.Time{}, nil
	}
	e := l.events[len(l.events)-1]
	return e.Position, e.Created, nil
}

// Probe implements projection.Prober.
func (l *Log) Probe(ctx context.Context, topics []string, from tracking.State, through uint64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probes++
	for _, e := range l.events {
		if e.Position.Commit > through {
			break
		}
		if slices.Contains(topics, e.Type) && !from.Done(e.Position.Commit) {
			return true, nil
		}
	}
	return false, nil
}

// Probes returns how many times Probe was called.
func (l *Log) Probes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probes
}

// Delivered returns how many events the log's subscriptions have delivered (returned from
// Next), in all.
func (l *Log) Delivered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivered
}

// Heads returns how many times Head was called.
func (l *Log) Heads() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heads
}

// Drop ends every open subscription with err, as a server restart or network cut would.
func (l *Log) Drop(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		s.err = err
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// FailSubscribe makes the next len(errs) calls of Subscribe fail with those errors in turn.
func (l *Log) FailSubscribe(errs ...error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failSubs = append(l.failSubs, errs...)
}

// Subscriptions returns how many subscriptions are open.
func (l *Log) Subscriptions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}

// Subscribe implements projection.Source.
func (l *Log) Subscribe(ctx context.Context, topics []string, from tracking.State) (projection.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failSubs) > 0 {
		err := l.failSubs[0]
		l.failSubs = l.failSubs[1:]
		return nil, err
	}
	every := l.CheckpointEvery
	if every <= 0 {
		every = 32
	}
	s := &subscription{l: l, from: from, every: every, topics: make(map[string]bool)}
	for _, t := range topics {
		s.topics[t] = true
	}
	l.subs[s] = true
	return s, nil
}

type subscription struct {
	l          *Log
	from       tracking.State
	topics     map[string]bool
	every      int
	idx        int
	considered int
	caughtUp   bool
	pending    []projection.Message
	err        error
	closed     bool
}

var errClosed = errors.New("projectiontest: subscription closed")

func (s *subscription) Next(ctx context.Context) (projection.Message, error) {
	l := s.l
	for {
		l.mu.Lock()
		if s.closed {
			l.mu.Unlock()
			return projection.Message{}, errClosed
		}
		if s.err != nil {
			err := s.err
			l.mu.Unlock()
			return projection.Message{}, err
		}
		if len(s.pending) > 0 {
			m := s.pending[0]
			s.pending = s.pending[1:]
			l.mu.Unlock()
			return m, nil
		}
		if s.idx < len(l.events) {
			e := l.events[s.idx]
			s.idx++
			s.considered++
			if s.considered%s.every == 0 {
				// The checkpoint is where the next event is, or will be, written (#4970).
				s.pending = append(s.pending, projection.Message{Kind: projection.CheckpointMessage, Checkpoint: s.nextPosition(), Time: time.Now()})
			}
			if s.topics[e.Type] && !s.from.Done(e.Position.Commit) {
				l.delivered++
				l.mu.Unlock()
				return projection.Message{Kind: projection.EventMessage, Event: e}, nil
			}
			l.mu.Unlock()
			continue
		}
		if !s.caughtUp {
			s.caughtUp = true
			now := time.Now()
			s.pending = append(s.pending,
				projection.Message{Kind: projection.CheckpointMessage, Checkpoint: l.next, Time: now},
				projection.Message{Kind: projection.CaughtUpMessage, Time: now})
			l.mu.Unlock()
			continue
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return projection.Message{}, ctx.Err()
		}
	}
}

// nextPosition is the position of the event after the last one considered, or the log's
// next write position. Called with l.mu held.
func (s *subscription) nextPosition() uint64 {
	if s.idx < len(s.l.events) {
		return s.l.events[s.idx].Position.Commit
	}
	return s.l.next
}

func (s *subscription) Close() error {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if !s.closed {
		s.closed = true
		delete(s.l.subs, s)
		close(s.l.changed)
		s.l.changed = make(chan struct{})
	}
	return nil
}
