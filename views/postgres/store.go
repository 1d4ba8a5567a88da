// Package postgres is the PostgreSQL view store: each batch of events is one transaction in
// which projections change their views (through a pgx.Tx, with statements pipelined in one
// pgx.Batch), the projection's tracking row advances by compare-and-set, and a NOTIFY tells
// waiters in other processes; Wait LISTENs for those notifications.
//
// Projector's own tables (projector_tracking, projector_dead_letters, projector_migrations)
// live in the first schema of the connection's search_path; Migrate creates them.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
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
}

// Store is the PostgreSQL view store. It is safe for concurrent use; Close it to end the
// LISTEN connection its waiters share.
type Store struct {
	pool *pgxpool.Pool
	opts Options

	mu       sync.Mutex
	listener *listener
	closed   bool
}

var (
	_ projection.Store[pgx.Tx]        = (*Store)(nil)
	_ projection.DeadLetterer[pgx.Tx] = (*Store)(nil)
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
func (s *Store) Apply(ctx context.Context, projectionName string, prev, next tracking.State, fn func(ctx context.Context, tx pgx.Tx) error) error {
	for _, st := range []tracking.State{prev, next} {
		if err := tracking.CheckStorable(st); err != nil {
			return fmt.Errorf("postgres: advance %q: %w", projectionName, err)
		}
	}
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin batch of %q: %w", projectionName, err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	tx := &Tx{Tx: ptx}
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Flush(ctx); err != nil {
		return err
	}
	var b pgx.Batch
	if prev == (tracking.State{}) {
		b.Queue(`INSERT INTO projector_tracking AS t (projection, commit_position, prepare_position, checkpoint_position, updated_at)
			VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (projection) DO UPDATE SET commit_position = $2, prepare_position = $3, checkpoint_position = $4, updated_at = now()
			WHERE t.commit_position = 0 AND t.prepare_position = 0 AND t.checkpoint_position = 0`,
			projectionName, int64(next.Last.Commit), int64(next.Last.Prepare), int64(next.Checkpoint))
	} else {
		b.Queue(`UPDATE projector_tracking SET commit_position = $2, prepare_position = $3, checkpoint_position = $4, updated_at = now()
			WHERE projection = $1 AND commit_position = $5 AND prepare_position = $6 AND checkpoint_position = $7`,
			projectionName, int64(next.Last.Commit), int64(next.Last.Prepare), int64(next.Checkpoint),
			int64(prev.Last.Commit), int64(prev.Last.Prepare), int64(prev.Checkpoint))
	}
	b.Queue(`SELECT pg_notify($1, $2)`, s.opts.Channel, fmt.Sprintf("%d %s", next.Reached(), projectionName))
	br := ptx.SendBatch(ctx, &b)
	tag, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: advance tracking of %q to %v: %w", projectionName, next, err)
	}
	if tag.RowsAffected() != 1 {
		cur, _, lerr := s.Load(context.WithoutCancel(ctx), projectionName)
		if lerr != nil {
			return fmt.Errorf("postgres: advance %q from %v: %w", projectionName, prev, tracking.ErrConflict)
		}
		return fmt.Errorf("postgres: advance %q from %v, but it is at %v: %w", projectionName, prev, cur, tracking.ErrConflict)
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit batch of %q: %w", projectionName, err)
	}
	return nil
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

// Reset deletes the tracking row of projectionName, so its next run starts afresh. The view's
// own tables are the caller's to clear.
func (s *Store) Reset(ctx context.Context, projectionName string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, projectionName); err != nil {
		return fmt.Errorf("postgres: reset %q: %w", projectionName, err)
	}
	return nil
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
// projectionName has processed commit. It re-reads the row whenever the runner's NOTIFY
// arrives (and after every (re)connection of the shared LISTEN connection), so no advance is
// missed; it never polls. A projection without a tracking row waits until it gets one. For the
// position of an event the projection does not subscribe to, it returns once the runner has
// committed a server checkpoint past it (see projection.Runner.Wait for the bound).
func (s *Store) Wait(ctx context.Context, projectionName string, commit uint64) (tracking.State, error) {
	l, err := s.sharedListener()
	if err != nil {
		return tracking.State{}, err
	}
	ch := l.subscribe(projectionName)
	defer l.unsubscribe(projectionName, ch)
	var st tracking.State
	for {
		cur, _, err := s.Load(ctx, projectionName)
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, err
		}
		st = cur
		if st.Done(commit) {
			return st, nil
		}
		select {
		case <-ch:
		case <-l.done:
			return st, fmt.Errorf("postgres: wait for %q: %w", projectionName, errClosed)
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
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
		s.listener = startListener(s.pool.Config().ConnConfig, s.opts.Channel, s.opts.ListenRetry)
	}
	return s.listener, nil
}

// Pool returns the pool the store writes through.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
