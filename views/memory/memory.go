// Package memory is an in-memory view store with the same contract as views/postgres: each
// batch is a transaction over a key/value view, applied atomically together with the
// projection's tracking state on commit and discarded on error. It serves tests, demos and
// programs that embed a projection.
package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Store is an in-memory view store. Transactions run one at a time. The zero value is not
// ready; use New.
type Store struct {
	mu       sync.Mutex // held for the whole of a transaction
	data     map[string]any
	tracking map[string]tracking.State
	dead     []DeadLetter
	parked   parkedTable
	wm       tracking.Watermark
}

var (
	_ projection.Store[*Tx]        = (*Store)(nil)
	_ projection.DeadLetterer[*Tx] = (*Store)(nil)
)

// New returns an empty Store.
func New() *Store {
	return &Store{data: make(map[string]any), tracking: make(map[string]tracking.State)}
}

// Tx is a view transaction: reads see the committed view plus this transaction's own writes;
// writes become visible to others only when the batch commits.
type Tx struct {
	s      *Store
	writes map[string]any
	dels   map[string]bool
	dead   []DeadLetter
	parked *parkedTable // the parked events as this transaction changed them; nil: unchanged
}

// Get returns the value stored under key.
func (tx *Tx) Get(key string) (any, bool) {
	if tx.dels[key] {
		return nil, false
	}
	if v, ok := tx.writes[key]; ok {
		return v, true
	}
	v, ok := tx.s.data[key]
	return v, ok
}

// Set stores v under key.
func (tx *Tx) Set(key string, v any) {
	delete(tx.dels, key)
	tx.writes[key] = v
}

// Delete removes key.
func (tx *Tx) Delete(key string) {
	delete(tx.writes, key)
	tx.dels[key] = true
}

// Add adds n to the int64 counter under key (missing counts as 0) and returns the new value.
// It panics if key holds something other than an int64, which is a projection bug.
func (tx *Tx) Add(key string, n int64) int64 {
	var cur int64
	if v, ok := tx.Get(key); ok {
		c, isInt := v.(int64)
		if !isInt {
			panic(fmt.Sprintf("memory: Add(%q): key holds %T, not int64", key, v))
		}
		cur = c
	}
	cur += n
	tx.Set(key, cur)
	return cur
}

// Keys returns the keys that start with prefix as this transaction sees them, sorted.
func (tx *Tx) Keys(prefix string) []string {
	var out []string
	for k := range tx.s.data {
		if strings.HasPrefix(k, prefix) && !tx.dels[k] {
			if _, written := tx.writes[k]; !written {
				out = append(out, k)
			}
		}
	}
	for k := range tx.writes {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Get returns the committed value under key.
func (s *Store) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// Int returns the committed int64 under key, or 0.
func (s *Store) Int(key string) int64 {
	v, _ := s.Get(key)
	n, _ := v.(int64)
	return n
}

// Keys returns the committed keys that start with prefix, sorted.
func (s *Store) Keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Apply implements projection.Store: it runs fn in a new transaction and, if fn succeeds and
// the tracking state of projection still equals prev, commits fn's writes and next together.
// A projection without tracking matches only the zero prev. A next behind prev rewinds the
// projection (Runner.Reset).
func (s *Store) Apply(ctx context.Context, projectionName string, prev, next tracking.State, fn func(ctx context.Context, tx *Tx) error) error {
	if err := tracking.CheckStorable(next); err != nil {
		return fmt.Errorf("memory: advance %q: %w", projectionName, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.tracking[projectionName]; cur != prev {
		return fmt.Errorf("memory: advance %q from %v, but it is at %v: %w", projectionName, prev, cur, tracking.ErrConflict)
	}
	tx := &Tx{s: s, writes: make(map[string]any), dels: make(map[string]bool)}
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: advance %q: %w", projectionName, err)
	}
	for k := range tx.dels {
		delete(s.data, k)
	}
	maps.Copy(s.data, tx.writes)
	s.dead = append(s.dead, tx.dead...)
	if tx.parked != nil {
		s.parked = *tx.parked
	}
	s.tracking[projectionName] = next
	if next.Last.Compare(prev.Last) < 0 || (next.Last == prev.Last && next.Checkpoint < prev.Checkpoint) {
		s.wm.Reset(projectionName) // a rewind (a reset): waiters wait for the rebuild
	}
	s.wm.Set(projectionName, next)
	return nil
}

// Load implements tracking.Reader.
func (s *Store) Load(_ context.Context, projectionName string) (tracking.State, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tracking[projectionName]
	return st, ok, nil
}

// Wait implements tracking.Waiter: it returns once projection's committed state has processed
// commit, without polling.
func (s *Store) Wait(ctx context.Context, projectionName string, commit uint64) (tracking.State, error) {
	return s.wm.Wait(ctx, projectionName, commit)
}

// DeadLetter is an event a projection skipped under the skip error policy.
type DeadLetter struct {
	Projection string
	Event      projection.Event
	Error      string
}

// DeadLetter implements projection.DeadLetterer: the record is kept if tx commits.
func (s *Store) DeadLetter(_ context.Context, tx *Tx, projectionName string, e projection.Event, cause error) error {
	tx.dead = append(tx.dead, DeadLetter{Projection: projectionName, Event: e, Error: cause.Error()})
	return nil
}

// DeadLetters returns the committed dead letters, oldest first.
func (s *Store) DeadLetters() []DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dead)
}
