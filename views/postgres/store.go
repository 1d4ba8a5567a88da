// Package postgres is the PostgreSQL view store: each batch of events is one transaction in
// which projections change their views (through a pgx.Tx, with statements pipelined in one
// pgx.Batch), the projection's tracking row advances by compare-and-set, and a NOTIFY tells
// waiters in other processes; Wait LISTENs for those notifications.
//
// Projector's own tables (projector_tracking, projector_tracking_generations,
// projector_dead_letters, projector_parked, projector_versions, projector_migrations) live in the
// first schema of the connection's search_path; Migrate creates them. Versions of a projection (versions.go), their shadow schemas (shadow.go) and
// the swap of one version's tables for another's (swap.go) are how a changed projection is
// rebuilt while readers keep the serving version.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/migrations"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// DefaultChannel is the NOTIFY channel tracking advances are announced on.
const DefaultChannel = "projector_tracking"

// advisoryClass is the first key of Projector's advisory locks ("proj").
const advisoryClass = 0x70726f6a

// Options tune a Store.
type Options struct {
	// Channel is the NOTIFY/LISTEN channel (default DefaultChannel). Every process that waits
	// on a store must use the channel its runner notifies on.
	Channel string
	// ListenRetry bounds the backoff of the waiters' LISTEN connection after a failure
	// (default 1s).
	ListenRetry time.Duration
	// Namespace is the leadership namespace of the Electors that run this store's projections
	// (their ElectorOptions.Namespace; empty: the current schema): Rewind takes a
	// projection's leadership lock in it.
	Namespace string
}

// Store is the PostgreSQL view store. It is safe for concurrent use; Close it to end the
// LISTEN connection its waiters share.
type Store struct {
	pool *pgxpool.Pool
	opts Options

	mu       sync.Mutex
	listener *listener
	closed   bool
	// partitions are the partitioned projections' numbers of partitions (SetPartitions).
	partitions map[string]int
	// schema is the schema of the tracking table, which notifications name; schemaRead tells
	// whether it has been read.
	schemaMu   sync.Mutex
	schema     string
	schemaRead bool
	// guards are the version checks of versioned projections, by tracking name (see Guard).
	guardMu sync.Mutex
	guards  map[string]guardOf
}

var (
	_ projection.Store[pgx.Tx]        = (*Store)(nil)
	_ projection.DeadLetterer[pgx.Tx] = (*Store)(nil)
	_ projection.Parker[pgx.Tx]       = (*Store)(nil)
)

// New returns a Store on pool. Call Migrate once before use.
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.ListenRetry <= 0 {
		opts.ListenRetry = time.Second
	}
	return &Store{pool: pool, opts: opts}
}

// Migrate applies the embedded migrations that the database lacks, in one transaction under
// an advisory lock, so several replicas may call it at once; applied versions are recorded in
// projector_migrations.
func (s *Store) Migrate(ctx context.Context) error {
	all, err := migrations.All()
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, int32(advisoryClass)); err != nil {
		return fmt.Errorf("postgres: migrate: take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS projector_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: create projector_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := tx.Query(ctx, `SELECT version FROM projector_migrations`)
	if err != nil {
		return fmt.Errorf("postgres: migrate: read projector_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("postgres: migrate: read projector_migrations: %w", err)
	}
	for _, v := range versions {
		applied[int(v)] = true
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migrate: apply %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO projector_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("postgres: migrate: record %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: commit: %w", err)
	}
	return nil
}

// Apply implements projection.Store. fn receives a *Tx (as a pgx.Tx); its queued statements
// are flushed, then the tracking row of projectionName moves from prev to next by
// compare-and-set, a notification is sent on the channel, and the transaction commits. A row
// that no longer holds prev gives an error wrapping tracking.ErrConflict, and positions above
// 2^63-1 one wrapping tracking.ErrPositionTooLarge; in both cases nothing is committed.
//
// Leadership: when ctx carries an Elector's Lease (the runner passes the context Elector.Acquire
// returned), the transaction checks that the lease's connection still holds the advisory lock
// before it advances tracking, and refuses to commit with an error wrapping
// projection.ErrLeadershipLost otherwise; every statement, the commit included, runs under ctx,
// so a lease that ends aborts the batch.
//
// Versions: for a projection the store Guards (see Guard), the transaction checks, next to the
// leadership check, that the version it runs is still in the state it runs it as, and refuses
// to commit with an error wrapping ErrVersionChanged and projection.ErrLeadershipLost
// otherwise; a failure of its statements after another version was swapped in is reported the
// same way, never as the event's fault. A building version's transaction resolves unqualified
// names in its shadow schema first.
//
// Transient failures: when fn fails because the connection failed (killed backend, server
// restart, network error, serialization failure or deadlock), the error wraps
// projection.ErrTransient, so the runner retries the batch instead of blaming the event.
func (s *Store) Apply(ctx context.Context, projectionName string, prev, next tracking.State, fn func(ctx context.Context, tx pgx.Tx) error) error {
	for _, st := range []tracking.State{prev, next} {
		if err := tracking.CheckStorable(st); err != nil {
			return fmt.Errorf("postgres: advance %q: %w", projectionName, err)
		}
	}
	schema, err := s.trackingSchema(ctx)
	if err != nil {
		return s.classify(nil, projectionName, err)
	}
	g, guarded := s.guardFor(projectionName)
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin batch of %q: %w", projectionName, err)
	}
	defer pc.Release() // destroys a connection left in a transaction
	// BEGIN goes with the batch's first statements (see lazyTx).
	ptx := newLazyTx(pc.Conn(), g.begin())
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	tx := &Tx{Tx: ptx}
	if err := fn(ctx, tx); err != nil {
		return s.classify(pc.Conn(), projectionName, s.versionMoved(ctx, projectionName, g, guarded, err))
	}
	if err := tx.Flush(ctx); err != nil {
		return s.classify(pc.Conn(), projectionName, s.versionMoved(ctx, projectionName, g, guarded, err))
	}
	return s.commitAdvance(ctx, ptx, projectionName, schema, g, guarded, prev, next)
}

// classify marks err, returned by a batch's handlers (or by the reading of the schema before
// the batch, with a nil conn), as transient when the connection failed rather than the event.
func (s *Store) classify(conn *pgx.Conn, projectionName string, err error) error {
	if errors.Is(err, projection.ErrTransient) {
		return err
	}
	if (conn != nil && conn.IsClosed()) || Transient(err) {
		return fmt.Errorf("postgres: batch of %q: %w: %w", projectionName, projection.ErrTransient, err)
	}
	return err
}

// Transient reports whether err is a failure of the PostgreSQL connection or server that a
// retry can fix, rather than an error of the statement: a connection exception (SQLSTATE class
// 08), an administrator shutdown or a crash (57P01-57P03), a serialization failure or deadlock
// (40001, 40P01), too many connections (53300), an I/O or network error, or a connection closed
// under the statement.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"):
			return true
		}
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "40001", "40P01", "53300":
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		pgconn.SafeToRetry(err):
		return true
	}
	return strings.Contains(err.Error(), "conn closed")
}

// Load implements tracking.Reader.
func (s *Store) Load(ctx context.Context, projectionName string) (tracking.State, bool, error) {
	var c, p, cp int64
	err := s.pool.QueryRow(ctx, `SELECT commit_position, prepare_position, checkpoint_position FROM projector_tracking WHERE projection = $1`, projectionName).Scan(&c, &p, &cp)
	if errors.Is(err, pgx.ErrNoRows) {
		return tracking.State{}, false, nil
	}
	if err != nil {
		return tracking.State{}, false, fmt.Errorf("postgres: load tracking of %q: %w", projectionName, err)
	}
	return tracking.State{Last: tracking.Position{Commit: uint64(c), Prepare: uint64(p)}, Checkpoint: uint64(cp)}, true, nil
}

// DeadLetter implements projection.DeadLetterer: it queues the event and cause into
// projector_dead_letters inside tx.
func (s *Store) DeadLetter(ctx context.Context, tx pgx.Tx, projectionName string, e projection.Event, cause error) error {
	data, meta := e.Data, e.Metadata
	if data == nil {
		data = []byte{}
	}
	if meta == nil {
		meta = []byte{}
	}
	if err := tracking.CheckStorable(tracking.State{Last: e.Position}); err != nil {
		return err
	}
	return Queue(ctx, tx, `INSERT INTO projector_dead_letters
		(projection, event_id, event_type, stream, revision, commit_position, prepare_position, content_type, data, metadata, created, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		projectionName, e.ID, e.Type, e.Stream, int64(e.Revision), int64(e.Position.Commit), int64(e.Position.Prepare),
		e.ContentType, data, meta, e.Created, cause.Error())
}

// Wait implements tracking.Waiter across processes: it returns once the tracking row of
// projectionName has processed commit. Waiters share one LISTEN connection per Store, and the
// waiters of one projection share its committed state: the runner's NOTIFY carries that state,
// so a commit wakes them without any query, however many they are. The row is read once per
// projection (not per waiter) when its state is not known yet, after every (re)connection of
// the LISTEN connection, and after a notification it cannot parse; it never polls. A read that
// fails transiently (see Transient) is retried with backoff up to Options.ListenRetry while
// anyone waits. A projection without a tracking row waits until it gets one. For the position
// of an event the projection does not subscribe to, it returns once the runner has committed
// a server checkpoint past it (see projection.Runner.Wait for the bound). For a partitioned
// projection (SetPartitions) it returns once every partition has processed commit, with the
// lowest of their states. After a rewind, reset or swap of versions it never returns for a
// position the rewound tracking has not processed, whatever the order in which the
// notifications of commits before it and reads of the row reach this process (see hub.offer).
func (s *Store) Wait(ctx context.Context, projectionName string, commit uint64) (tracking.State, error) {
	l, err := s.sharedListener()
	if err != nil {
		return tracking.State{}, err
	}
	if n := s.partitionsOf(projectionName); n > 0 {
		return s.waitPartitions(ctx, l, projectionName, n, commit)
	}
	st, _, err := l.wait(ctx, projectionName, commit)
	return st, err
}

// Waiting returns the number of Wait calls blocked on projectionName: a test waits for it
// before it commits, to prove the wake-up path.
func (s *Store) Waiting(projectionName string) int {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	if l == nil {
		return 0
	}
	return l.waiting(projectionName)
}

var errClosed = errors.New("store closed")

// Close ends the LISTEN connection shared by waiters; pending Wait calls fail. It does not
// close the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	l := s.listener
	s.listener, s.closed = nil, true
	s.mu.Unlock()
	if l != nil {
		l.stop()
	}
	return nil
}

func (s *Store) sharedListener() (*listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("postgres: wait: %w", errClosed)
	}
	if s.listener == nil {
		s.listener = startListener(s.pool.Config().ConnConfig, s.opts.Channel, s.opts.ListenRetry, s.loadForWait)
	}
	return s.listener, nil
}

// Pool returns the pool the store writes through.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
