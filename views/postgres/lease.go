// A Lease: the leadership of one projection held as a session advisory lock, its health checks,
// its check inside a batch transaction, and its release.

package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease is the leadership of one projection, held as a session advisory lock on a dedicated
// connection. It ends when released or when the connection is found dead; Lost tells when.
// Its methods are safe for concurrent use.
type Lease struct {
	projection string
	namespace  string
	key        int64
	pid        uint32
	timeout    time.Duration

	mu   sync.Mutex // serializes use of conn
	conn *pgx.Conn  // nil once closed

	endOnce sync.Once
	cause   error // set before lost is closed
	lost    chan struct{}

	stopOnce sync.Once
	stop     chan struct{} // closed to end the watcher
	done     chan struct{} // closed when the watcher has ended
}

// Projection is the name of the projection this Lease leads.
func (l *Lease) Projection() string { return l.projection }

// Namespace is the namespace the lock key was computed in.
func (l *Lease) Namespace() string { return l.namespace }

// Key is the advisory lock key (see LockKey).
func (l *Lease) Key() int64 { return l.key }

// PID is the PostgreSQL backend process id of the lock connection, as pg_locks and
// pg_stat_activity show it.
func (l *Lease) PID() uint32 { return l.pid }

// Lost returns a channel closed the moment leadership ends: when the lock connection is found
// dead (by the periodic check or by Check) or when the Lease is released. Err tells which.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err is nil while the Lease leads; afterwards it is ErrLeaseReleased or an error wrapping
// ErrLeadershipLost and the connection's failure.
func (l *Lease) Err() error {
	select {
	case <-l.lost:
		return l.cause
	default:
		return nil
	}
}

// Check runs a health query on the lock connection now; if it fails, the Lease ends as lost
// and Check returns the cause. A runner may call it before each commit. ctx bounds only the
// wait for the connection; the query itself is bounded by the Elector's Timeout.
func (l *Lease) Check(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.conn == nil {
		return l.Err()
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	_, err := l.conn.Exec(qctx, `SELECT 1`)
	cancel()
	if err != nil {
		l.closeLocked()
		l.end(fmt.Errorf("postgres: leadership of %q: %w: %w", l.projection, ErrLeadershipLost, err))
		return l.Err()
	}
	return nil
}

// Verify checks, inside tx (a transaction on any other connection to the same database), that
// the lock connection of this Lease still holds the advisory lock, so a batch can refuse to
// commit without leadership. It returns an error wrapping ErrLeadershipLost when the lock is no
// longer held, and marks the Lease lost.
func (l *Lease) Verify(ctx context.Context, tx pgx.Tx) error {
	if err := l.Err(); err != nil {
		return err
	}
	var held bool
	if err := tx.QueryRow(ctx, lockHeld, l.lockHeldArgs()...).Scan(&held); err != nil {
		return fmt.Errorf("postgres: leadership of %q: verify the advisory lock: %w", l.projection, err)
	}
	return l.held(held)
}

// lockHeld answers whether a backend holds an advisory lock: $1 and $2 are the halves of its
// key, $3 the backend's process id.
const lockHeld = `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1 AND pid = $3 AND granted)`

// lockHeldArgs are the arguments of lockHeld for the Lease's lock.
func (l *Lease) lockHeldArgs() []any {
	u := uint64(l.key)
	return []any{int64(u >> 32), int64(u & 0xffffffff), int64(l.pid)}
}

// held takes lockHeld's answer: when the lock is no longer held, the Lease ends as lost.
func (l *Lease) held(held bool) error {
	if !held {
		l.end(fmt.Errorf("postgres: leadership of %q: backend %d no longer holds advisory lock %d: %w", l.projection, l.pid, l.key, ErrLeadershipLost))
		return l.Err()
	}
	return nil
}

// Release gives leadership up: it stops the health checks, unlocks, and closes the lock
// connection (closing alone would free the lock; unlocking first frees it even if the close is
// slow). It is safe to call more than once; later calls return nil.
func (l *Lease) Release(ctx context.Context) error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.end(ErrLeaseReleased)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, l.timeout)
	_, err := l.conn.Exec(qctx, `SELECT pg_advisory_unlock($1)`, l.key)
	cancel()
	l.closeLocked()
	if err != nil {
		return fmt.Errorf("postgres: leadership of %q: unlock (the connection is closed, which frees the lock): %w", l.projection, err)
	}
	return nil
}

// watch checks the connection every interval until the Lease ends.
func (l *Lease) watch(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.lost:
			return
		case <-t.C:
			if l.Check(context.Background()) != nil {
				return
			}
		}
	}
}

func (l *Lease) end(cause error) {
	l.endOnce.Do(func() {
		l.cause = cause
		close(l.lost)
	})
}

// closeLocked closes the connection; l.mu must be held.
func (l *Lease) closeLocked() {
	if l.conn != nil {
		closeConn(l.conn, l.timeout)
		l.conn = nil
	}
}

func closeConn(conn *pgx.Conn, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = conn.Close(ctx)
}

type leaseKey struct{}

// LeaseFromContext returns the Lease carried by a context that Elector.Acquire returned (or
// one derived from it), so a store can Verify leadership inside the batch transaction.
func LeaseFromContext(ctx context.Context) (*Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(*Lease)
	return l, ok
}

// VerifyLeadership is the fence a batch runs before it commits: when ctx carries a Lease (it
// derives from a context Elector.Acquire returned), it checks inside tx that the Lease's lock
// connection still holds the lock (see Lease.Verify) and returns an error wrapping
// ErrLeadershipLost if not; without a Lease it does nothing. Called in the batch transaction
// after the handlers and before the tracking advance, it stops a leader whose lock connection
// has died at its next commit rather than at its next periodic check.
func VerifyLeadership(ctx context.Context, tx pgx.Tx) error {
	l, ok := LeaseFromContext(ctx)
	if !ok {
		return nil
	}
	return l.Verify(ctx, tx)
}
