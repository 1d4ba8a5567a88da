package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
)

// Defaults of ElectorOptions.
const (
	DefaultLeaderRetryInterval = time.Second
	DefaultLeaderCheckInterval = 500 * time.Millisecond
	DefaultLeaderTimeout       = 5 * time.Second
	DefaultKeepaliveIdle       = 10 * time.Second
	DefaultKeepaliveInterval   = 5 * time.Second
	DefaultKeepaliveCount      = 3
	DefaultTCPUserTimeout      = 30 * time.Second
)

// ErrLeadershipLost is wrapped by the cause of a Lease that ended because its lock connection
// failed (the advisory lock may already belong to another process), and by the errors of
// Verify and VerifyLeadership. It is projection.ErrLeadershipLost, so a Runner whose batch a
// store refuses for this reason treats it as the end of its leadership.
var ErrLeadershipLost = projection.ErrLeadershipLost

// ErrLeaseReleased is the cause of a Lease that ended because it was released.
var ErrLeaseReleased = errors.New("leadership released")

// ElectorOptions tune an Elector. Zero values take the defaults.
type ElectorOptions struct {
	// Namespace separates independent Projector installations that share a database. When
	// empty, it is the current schema of the lock connection (the schema Projector's tables
	// live in), so installations in different schemas never contend. Store.Rewind takes the
	// same lock: give the Store the same Namespace (Options.Namespace).
	Namespace string
	// RetryInterval is how often a standby tries to take the lock (default 1s). It bounds how
	// long a standby takes to lead once the lock frees.
	RetryInterval time.Duration
	// CheckInterval is how often a leader checks that its lock connection is alive (default
	// 500ms). It bounds how long a leader keeps going after its connection dies.
	CheckInterval time.Duration
	// Timeout bounds connecting and every statement on the lock connection (default 5s); a
	// leader whose health check times out has lost leadership.
	Timeout time.Duration

	// The lock connection's server-side TCP settings. If the leader's node dies without closing
	// its socket (a power loss, a network partition), PostgreSQL would otherwise hold the lock,
	// and no standby would take over, until the operating system's default keepalive gives up
	// (about two hours). They are sent as the run-time parameters tcp_keepalives_idle,
	// tcp_keepalives_interval, tcp_keepalives_count and tcp_user_timeout of the lock connection,
	// so the server drops a dead leader's session, and frees its lock, after about KeepaliveIdle
	// + KeepaliveCount × KeepaliveInterval when idle, or TCPUserTimeout when data it sent stays
	// unacknowledged. A value the connection configuration already sets (as a run-time
	// parameter, or with -c in its options) is kept. Zero takes the default; a negative value
	// leaves the server's setting. PostgreSQL ignores them on Unix-domain sockets, and
	// tcp_user_timeout where the operating system lacks it.

	// KeepaliveIdle is how long the connection is idle before the server's first keepalive
	// probe (default 10s; whole seconds).
	KeepaliveIdle time.Duration
	// KeepaliveInterval is the time between unanswered keepalive probes (default 5s; whole
	// seconds).
	KeepaliveInterval time.Duration
	// KeepaliveCount is how many unanswered probes make the server drop the connection
	// (default 3).
	KeepaliveCount int
	// TCPUserTimeout is how long data the server sent may stay unacknowledged before it drops
	// the connection (default 30s; milliseconds).
	TCPUserTimeout time.Duration
}

func (o ElectorOptions) withDefaults() ElectorOptions {
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultLeaderRetryInterval
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultLeaderCheckInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultLeaderTimeout
	}
	if o.KeepaliveIdle == 0 {
		o.KeepaliveIdle = DefaultKeepaliveIdle
	}
	if o.KeepaliveInterval == 0 {
		o.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if o.KeepaliveCount == 0 {
		o.KeepaliveCount = DefaultKeepaliveCount
	}
	if o.TCPUserTimeout == 0 {
		o.TCPUserTimeout = DefaultTCPUserTimeout
	}
	return o
}

// tcpParams are the lock connection's run-time parameters for TCP keepalives, by name; a
// negative option is left out.
func (o ElectorOptions) tcpParams() map[string]string {
	seconds := func(d time.Duration) string {
		return strconv.FormatInt(int64(max((d+time.Second-1)/time.Second, 1)), 10)
	}
	p := make(map[string]string, 4)
	if o.KeepaliveIdle > 0 {
		p["tcp_keepalives_idle"] = seconds(o.KeepaliveIdle)
	}
	if o.KeepaliveInterval > 0 {
		p["tcp_keepalives_interval"] = seconds(o.KeepaliveInterval)
	}
	if o.KeepaliveCount > 0 {
		p["tcp_keepalives_count"] = strconv.Itoa(o.KeepaliveCount)
	}
	if o.TCPUserTimeout > 0 {
		p["tcp_user_timeout"] = strconv.FormatInt(max(o.TCPUserTimeout.Milliseconds(), 1), 10)
	}
	return p
}

// withTCPParams returns a copy of cfg with the lock connection's TCP parameters added, except
// those cfg already sets as run-time parameters or in its options.
func withTCPParams(cfg *pgx.ConnConfig, opts ElectorOptions) *pgx.ConnConfig {
	c := cfg.Copy()
	if c.RuntimeParams == nil {
		c.RuntimeParams = make(map[string]string)
	}
	for name, value := range opts.tcpParams() {
		if _, set := c.RuntimeParams[name]; set || strings.Contains(c.RuntimeParams["options"], name) {
			continue
		}
		c.RuntimeParams[name] = value
	}
	return c
}

// Elector grants one active runner per projection across processes: the leader of a
// projection is the session that holds a PostgreSQL session-level advisory lock on the
// projection's LockKey. Each lease holds its lock on a dedicated connection opened from the
// Elector's configuration (never a pooled connection, whose session could be handed to other
// work or recycled), so the lock lives exactly as long as that connection: if the process dies,
// even by SIGKILL, or its connection is killed, PostgreSQL frees the lock and a standby takes
// over within RetryInterval.
//
// Leadership narrows, but cannot by itself close, the window in which two processes believe
// they lead (a leader learns of its lost connection only at its next check); the
// compare-and-set on the tracking row stays the last line of defence. To close the window, a
// batch calls VerifyLeadership inside its transaction before it commits: a leader whose lock
// connection has died then fails its next commit instead of writing until its next check.
//
// The lock connection must reach PostgreSQL directly or through a pooler in session mode: a
// transaction-mode pooler would hand the session, and the lock, to other clients.
//
// Elector implements projection.Leader. It holds no connections itself and is safe for
// concurrent use.
type Elector struct {
	cfg  *pgx.ConnConfig
	opts ElectorOptions
}

var _ projection.Leader = (*Elector)(nil)

// NewElector returns an Elector whose lock connections use a copy of cfg (typically
// pool.Config().ConnConfig, so the locks live in the database the views are in), with the
// TCP keepalive settings of opts added (see ElectorOptions).
func NewElector(cfg *pgx.ConnConfig, opts ElectorOptions) *Elector {
	opts = opts.withDefaults()
	return &Elector{cfg: withTCPParams(cfg, opts), opts: opts}
}

// Acquire implements projection.Leader: it blocks as a standby until this process leads
// projectionName (see AcquireLease), then returns a context that carries the Lease (see
// LeaseFromContext) and ends, with the Lease's cause, when ctx ends or leadership is lost or
// released. release gives leadership up and waits for the lock connection to close; it is safe
// to call more than once and must be called.
func (e *Elector) Acquire(ctx context.Context, projectionName string) (context.Context, func(), error) {
	lease, err := e.AcquireLease(ctx, projectionName)
	if err != nil {
		return nil, nil, err
	}
	lead, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, lease))
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-lease.Lost():
			cancel(lease.Err())
		case <-lead.Done():
		}
	}()
	release := sync.OnceFunc(func() {
		cancel(ErrLeaseReleased)
		<-done
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.Timeout)
		defer rcancel()
		_ = lease.Release(rctx)
	})
	return lead, release, nil
}

// AcquireLease blocks until this process leads projectionName, trying the lock every
// RetryInterval on one dedicated connection, and returns the Lease. It returns ctx's error when
// ctx ends first, and an error naming the projection when the lock connection cannot be opened
// or fails while waiting (the caller backs off and calls again).
func (e *Elector) AcquireLease(ctx context.Context, projectionName string) (*Lease, error) {
	if projectionName == "" {
		return nil, errors.New("postgres: leadership: empty projection name")
	}
	cctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	conn, err := pgx.ConnectConfig(cctx, e.cfg.Copy())
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("postgres: leadership of %q: open the lock connection: %w", projectionName, err)
	}
	fail := func(what string, err error) (*Lease, error) {
		closeConn(conn, e.opts.Timeout)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("postgres: leadership of %q: %s: %w", projectionName, what, err)
	}
	var pid uint32
	qctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	key, namespace, err := leaderKey(qctx, conn, e.opts.Namespace, projectionName)
	if err == nil {
		err = conn.QueryRow(qctx, `SELECT pg_backend_pid()`).Scan(&pid)
	}
	cancel()
	if err != nil {
		return fail("compute the lock key", err)
	}
	for {
		var ok bool
		qctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
		err := conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok)
		cancel()
		if err != nil {
			return fail(fmt.Sprintf("try the advisory lock %d", key), err)
		}
		if ok {
			return e.startLease(conn, projectionName, namespace, key, pid), nil
		}
		t := time.NewTimer(e.opts.RetryInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			closeConn(conn, e.opts.Timeout)
			return nil, ctx.Err()
		}
	}
}

func (e *Elector) startLease(conn *pgx.Conn, projectionName, namespace string, key int64, pid uint32) *Lease {
	l := &Lease{
		projection: projectionName,
		namespace:  namespace,
		key:        key,
		pid:        pid,
		timeout:    e.opts.Timeout,
		conn:       conn,
		lost:       make(chan struct{}),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	go l.watch(e.opts.CheckInterval)
	return l
}
