package postgres

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/tracking"
)

// hub is the shared wait state of one projection: its committed tracking state and its
// waiters, queued by the position they wait for, so that a new state wakes only the waiters
// it satisfies. Its fields are guarded by listener.mu.
type hub struct {
	state tracking.State
	// generation is state's generation: the highest seen for the projection, kept when
	// state is forgotten (known false), since generations only grow.
	generation uint64
	// known tells that state is the committed state: read, or notified, while the LISTEN
	// connection was up since.
	known bool
	// tracked tells that the projection has a tracking row or was notified: a hub without
	// waiters is kept (and kept current by notifications) only then.
	tracked bool
	// invalidations counts the times state was forgotten, so that a read that started before
	// one (and may have missed notifications) is done again.
	invalidations uint64
	reading       bool
	// failure is closed when a read fails for good; replaced when the next read starts.
	failure *readFailure
	waiters int       // Wait calls in progress
	queue   waitQueue // those not woken yet, the lowest position first
}

// readFailure is a read's error, given to the waiters when ch closes.
type readFailure struct {
	ch  chan struct{}
	err error
}

// waiter is one Wait call in a hub's queue.
type waiter struct {
	commit     uint64
	woken      chan struct{}  // closed once state is done for commit
	state      tracking.State // the state that woke it
	generation uint64         // state's generation
	index      int            // in the queue; -1 once out of it
}

// waitQueue is a min-heap of waiters by commit (container/heap).
type waitQueue []*waiter

func (q waitQueue) Len() int           { return len(q) }
func (q waitQueue) Less(i, j int) bool { return q[i].commit < q[j].commit }
func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	w.index = -1
	return w
}

func newHub() *hub { return &hub{failure: &readFailure{ch: make(chan struct{})}} }

// offer records s, a committed state of generation, unless h knows a later one, and reports
// whether it did. Reads and notifications reach h in any order relative to the commits they
// come from (a notification committed before a rewind may be delivered after the rewind's own
// update of this process's waiters, or after a read of the rewound row), so they are ordered
// here: a later generation supersedes every state of an earlier one, whatever its position (a
// rewind, reset or swap moved it back); an earlier generation is ignored, even when h's state is
// forgotten; within one generation positions only go forward, so the further state is the later.
func (h *hub) offer(s tracking.State, generation uint64) bool {
	switch {
	case generation < h.generation:
		return false
	case generation == h.generation && h.known && !further(s, h.state):
		return false
	}
	h.generation = generation
	h.set(s)
	return true
}

// further reports whether s is past t: a later last event, or the same one and a later
// checkpoint.
func further(s, t tracking.State) bool {
	if c := s.Last.Compare(t.Last); c != 0 {
		return c > 0
	}
	return s.Checkpoint > t.Checkpoint
}

// set records s as the committed state and wakes the waiters it satisfies. State.Done holds
// for every position below one it holds for, so they are the front of the queue.
func (h *hub) set(s tracking.State) {
	h.clearFailure()
	h.state, h.known = s, true
	for len(h.queue) > 0 && s.Done(h.queue[0].commit) {
		w := heap.Pop(&h.queue).(*waiter)
		w.state, w.generation = s, h.generation
		close(w.woken)
	}
}

// clearFailure forgets a failed read, so that later waiters do not get its error.
func (h *hub) clearFailure() {
	select {
	case <-h.failure.ch:
		h.failure = &readFailure{ch: make(chan struct{})}
	default:
	}
}

// fail hands err to the waiters.
func (h *hub) fail(err error) {
	h.failure.err = err
	close(h.failure.ch)
}

// wait blocks until projection's committed state has processed commit, ctx ends (returning the
// latest state known with ctx's error), the listener stops, or a read fails for good. It
// returns the state's generation too.
func (l *listener) wait(ctx context.Context, projection string, commit uint64) (tracking.State, uint64, error) {
	l.mu.Lock()
	h := l.hubs[projection]
	if h == nil {
		h = newHub()
		l.hubs[projection] = h
	}
	h.waiters++
	w := &waiter{commit: commit, woken: make(chan struct{}), index: -1}
	if h.known && h.state.Done(commit) {
		w.state, w.generation = h.state, h.generation
		close(w.woken)
	} else {
		heap.Push(&h.queue, w)
		// Without a LISTEN connection a known state may be old: read it again (or join the
		// read in flight).
		if (!h.known || !l.listening) && !h.reading {
			l.startRead(projection, h)
		}
	}
	failure := h.failure
	l.mu.Unlock()
	defer l.leave(projection, h, w)
	select {
	case <-w.woken:
		return w.state, w.generation, nil
	case <-failure.ch:
		s, g := l.latest(h)
		return s, g, failure.err
	case <-l.done:
		s, g := l.latest(h)
		return s, g, fmt.Errorf("postgres: wait for %q: %w", projection, errClosed)
	case <-ctx.Done():
		s, g := l.latest(h)
		return s, g, ctx.Err()
	}
}

// latest returns the last state h knew and its generation.
func (l *listener) latest(h *hub) (tracking.State, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return h.state, h.generation
}

func (l *listener) leave(projection string, h *hub, w *waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.index >= 0 {
		heap.Remove(&h.queue, w.index)
	}
	h.waiters--
	l.dropIfIdle(projection, h)
}

// dropIfIdle forgets h when nothing needs it: no waiters, no read in flight, and no state
// that notifications keep current. Called with l.mu held.
func (l *listener) dropIfIdle(projection string, h *hub) {
	if h.waiters == 0 && !h.reading && !(h.known && h.tracked && l.listening) && l.hubs[projection] == h {
		delete(l.hubs, projection)
	}
}

// waiting returns the number of waiters blocked on projection.
func (l *listener) waiting(projection string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.hubs[projection]; h != nil {
		return h.waiters
	}
	return 0
}

// startRead reads projection's tracking row into h in a goroutine of its own (under the
// listener's context, so a waiter that leaves does not cancel the read the others share).
// Called with l.mu held and h.reading false.
func (l *listener) startRead(projection string, h *hub) {
	if l.stopped {
		return
	}
	h.reading = true
	h.clearFailure()
	l.reads.Add(1)
	go func() {
		defer l.reads.Done()
		l.read(projection, h)
	}()
}

// sharedReadTimeout bounds one read of the tracking row that waiters share: a read that hangs
// is abandoned and tried again, as a transient failure.
const sharedReadTimeout = 10 * time.Second

// read loads the row until it has a state to give: a transient failure (or a read that takes
// longer than sharedReadTimeout) is retried with backoff (up to the listener's retry) while
// waiters remain; any other failure is handed to the waiters.
func (l *listener) read(projection string, h *hub) {
	bo := backoff.New(10*time.Millisecond, l.retry)
	for {
		l.mu.Lock()
		invalidations := h.invalidations
		l.mu.Unlock()
		rctx, cancel := context.WithTimeout(l.ctx, sharedReadTimeout)
		st, ok, generation, err := l.load(rctx, projection)
		timedOut := rctx.Err() != nil && l.ctx.Err() == nil
		cancel()
		l.mu.Lock()
		switch {
		case err == nil && h.invalidations == invalidations:
			// A notification that arrived during the read, or arrives after it but was
			// committed before it, is ordered by offer. A hub with a generation is kept
			// current by notifications even without a row (a rewind to the start deletes
			// it): forgetting its generation would let a late notification from before
			// the rewind in again.
			if !h.offer(st, generation) && !h.known {
				// Generations only grow: the tracking tables were made anew.
				h.generation = generation
				h.set(st)
			}
			h.tracked = h.tracked || ok || generation > 0
		case err == nil && h.known:
			// Invalidated during the read, then a notification made the state known
			// again: it is as new as the read.
		case l.ctx.Err() != nil || h.waiters == 0:
			// Stopping, or nobody is waiting any more.
		case err == nil:
			// Invalidated during the read (a reconnection): read again at once.
			l.mu.Unlock()
			continue
		case !Transient(err) && !timedOut:
			h.fail(err)
		default:
			// A killed connection or a restarting server: read again after a backoff.
			l.mu.Unlock()
			t := time.NewTimer(bo.Next())
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
			}
			continue
		}
		h.reading = false
		l.dropIfIdle(projection, h)
		l.mu.Unlock()
		return
	}
}
