package tracking

import (
	"context"
	"sync"
)

// Reader reads the tracked state of a projection. ok is false when the projection has no
// tracking row yet.
type Reader interface {
	Load(ctx context.Context, projection string) (s State, ok bool, err error)
}

// Waiter blocks until a projection has processed a log position.
type Waiter interface {
	// Wait returns the projection's state once State.Done(commit) holds, or ctx's error.
	Wait(ctx context.Context, projection string, commit uint64) (State, error)
}

// Watermark is the in-process record of how far each projection has committed. Writers call
// Set after each commit; Wait blocks without polling until a position is done. The zero value
// is ready to use and safe for concurrent use.
type Watermark struct {
	mu      sync.Mutex
	states  map[string]State
	changed map[string]chan struct{} // closed and replaced on every Set for that projection
	waiting map[string]int           // Wait calls blocked, by projection
}

// Set records s as the committed state of projection and wakes its waiters. States that are
// behind the recorded one are ignored, so Set never moves a watermark backwards; use Reset
// for a deliberate rewind.
func (w *Watermark) Set(projection string, s State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	cur, ok := w.states[projection]
	if ok && s.Last.Compare(cur.Last) < 0 {
		return
	}
	if ok && s.Last == cur.Last && s.Checkpoint < cur.Checkpoint {
		s.Checkpoint = cur.Checkpoint
	}
	w.states[projection] = s
	w.wake(projection)
}

// Reset forgets the state of projection (after a rewind) and wakes its waiters, who re-check.
func (w *Watermark) Reset(projection string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	delete(w.states, projection)
	w.wake(projection)
}

// Load returns the recorded state of projection.
func (w *Watermark) Load(_ context.Context, projection string) (State, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.states[projection]
	return s, ok, nil
}

// Wait blocks until projection's recorded state has processed commit, or ctx ends; on ctx's
// end it returns the latest state with ctx's error.
func (w *Watermark) Wait(ctx context.Context, projection string, commit uint64) (State, error) {
	for {
		w.mu.Lock()
		w.init()
		s := w.states[projection]
		if s.Done(commit) {
			w.mu.Unlock()
			return s, nil
		}
		ch, ok := w.changed[projection]
		if !ok {
			ch = make(chan struct{})
			w.changed[projection] = ch
		}
		w.waiting[projection]++
		w.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		w.mu.Lock()
		if w.waiting[projection]--; w.waiting[projection] == 0 {
			delete(w.waiting, projection)
		}
		w.mu.Unlock()
		if err != nil {
			return s, err
		}
	}
}

// Waiting returns the number of Wait calls blocked on projection: a test waits for it before
// it calls Set, to prove the wake-up path.
func (w *Watermark) Waiting(projection string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waiting[projection]
}

func (w *Watermark) init() {
	if w.states == nil {
		w.states = make(map[string]State)
		w.changed = make(map[string]chan struct{})
		w.waiting = make(map[string]int)
	}
}

func (w *Watermark) wake(projection string) {
	if ch, ok := w.changed[projection]; ok {
		close(ch)
		delete(w.changed, projection)
	}
}
