// An in-memory projection.Leader for tests: one lease per projection, revocable.

package projectiontest

import (
	"context"
	"errors"
	"sync"

	"github.com/projector-dev/projector/projection"
)

// ErrReleased is the cause of a lease context that ended because its holder released it.
var ErrReleased = errors.New("projectiontest: lease released")

// Leader is an in-memory projection.Leader: it grants one lease per projection name to the
// runners that share it, as an advisory lock does across processes. Revoke ends a lease the way a
// lost lock connection does. The zero value is not ready; use NewLeader.
type Leader struct {
	mu     sync.Mutex
	held   map[string]*lease
	grants map[string]int
	freed  chan struct{} // closed and replaced whenever a lease ends
	fails  []error
}

type lease struct {
	cancel context.CancelCauseFunc
}

var _ projection.Leader = (*Leader)(nil)

// NewLeader returns a Leader with no lease granted.
func NewLeader() *Leader {
	return &Leader{held: make(map[string]*lease), grants: make(map[string]int), freed: make(chan struct{})}
}

// Acquire implements projection.Leader: it blocks until no one holds the lease of projection
// (or ctx ends), then grants it. The returned context ends when ctx ends, the lease is revoked,
// or release is called.
func (l *Leader) Acquire(ctx context.Context, projectionName string) (context.Context, func(), error) {
	for {
		l.mu.Lock()
		if len(l.fails) > 0 {
			err := l.fails[0]
			l.fails = l.fails[1:]
			l.mu.Unlock()
			return nil, nil, err
		}
		if err := ctx.Err(); err != nil {
			l.mu.Unlock()
			return nil, nil, err
		}
		if l.held[projectionName] == nil {
			lctx, cancel := context.WithCancelCause(ctx)
			ls := &lease{cancel: cancel}
			l.held[projectionName] = ls
			l.grants[projectionName]++
			l.mu.Unlock()
			stop := context.AfterFunc(lctx, func() { l.end(projectionName, ls, nil) })
			release := func() {
				stop()
				l.end(projectionName, ls, ErrReleased)
			}
			return lctx, release, nil
		}
		ch := l.freed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// end frees the lease ls of name (if it still holds it) and ends its context with cause.
func (l *Leader) end(name string, ls *lease, cause error) {
	ls.cancel(cause)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] == ls {
		delete(l.held, name)
		close(l.freed)
		l.freed = make(chan struct{})
	}
}

// Revoke ends the current lease of projectionName with cause, as a killed lock connection would,
// and reports whether there was one. Another runner (or the same one) may then acquire it.
func (l *Leader) Revoke(projectionName string, cause error) bool {
	l.mu.Lock()
	ls := l.held[projectionName]
	l.mu.Unlock()
	if ls == nil {
		return false
	}
	l.end(projectionName, ls, cause)
	return true
}

// Held reports whether someone holds the lease of projectionName.
func (l *Leader) Held(projectionName string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[projectionName] != nil
}

// Grants returns how many times the lease of projectionName has been granted.
func (l *Leader) Grants(projectionName string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grants[projectionName]
}

// FailAcquire makes the next len(errs) calls of Acquire fail with those errors in turn, as an
// unreachable database would.
func (l *Leader) FailAcquire(errs ...error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, errs...)
}
