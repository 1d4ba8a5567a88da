// The end of a batch: its leadership fence, version check, tracking advance, notification and
// COMMIT, sent in one round trip. Each check fails in SQL (see migrations/0008_commit_fences.sql),
// so PostgreSQL skips the COMMIT after a failed one and the batch rolls back.

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// The SQLSTATEs of the commit fences' errors.
const (
	conflictCode = "PJ002" // projector_advance: the tracking row is not where the batch started
	lockLostCode = "PJ003" // projector_require_lock: the leader's lock is no longer held
)

// commitAdvance ends the batch of projectionName in tx: when ctx carries a Lease, the check that
// its lock is still held (see VerifyLeadership); the version check of a guarded projection; the
// tracking advance from prev to next; its notification; and COMMIT, all in one round trip.
func (s *Store) commitAdvance(ctx context.Context, tx *lazyTx, projectionName, schema string, g guardOf, guarded bool, prev, next tracking.State) error {
	var b pgx.Batch
	lease, leading := LeaseFromContext(ctx)
	if leading {
		if err := lease.Err(); err != nil {
			return leadershipError(projectionName, err)
		}
		b.Queue(`SELECT projector_require_lock($1, $2, $3)`, lease.lockHeldArgs()...)
	}
	if guarded {
		b.Queue(`SELECT projector_check_version($1, $2, $3)`, g.base, g.version, string(g.state))
	}
	b.Queue(`SELECT projector_advance($1, $2, $3, $4, $5, $6, $7)`, projectionName,
		int64(next.Last.Commit), int64(next.Last.Prepare), int64(next.Checkpoint),
		int64(prev.Last.Commit), int64(prev.Last.Prepare), int64(prev.Checkpoint))
	notify, args := advanceNotification(s.opts.Channel, schema, projectionName, next)
	b.Queue(notify, args...)
	b.Queue("COMMIT")
	br := tx.SendBatch(ctx, &b)
	var err error
	var tag pgconn.CommandTag
	for range b.QueuedQueries {
		if tag, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		tx.done = true // committed
		if tag.String() == "ROLLBACK" {
			return fmt.Errorf("postgres: commit batch of %q: %w", projectionName, pgx.ErrTxCommitRollback)
		}
		return nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("postgres: commit batch of %q at %v: %w", projectionName, next, err)
	}
	switch pe.Code {
	case lockLostCode:
		return leadershipError(projectionName, lease.held(false))
	case versionChangedCode:
		return fmt.Errorf("postgres: batch of %q not committed: %w: %w: %w", projectionName, ErrVersionChanged, projection.ErrLeadershipLost, err)
	case conflictCode:
		cur, _, lerr := s.Load(context.WithoutCancel(ctx), projectionName)
		if lerr != nil {
			return fmt.Errorf("postgres: advance %q from %v: %w", projectionName, prev, tracking.ErrConflict)
		}
		return fmt.Errorf("postgres: advance %q from %v, but it is at %v: %w", projectionName, prev, cur, tracking.ErrConflict)
	}
	return fmt.Errorf("postgres: advance tracking of %q to %v: %w", projectionName, next, err)
}

// leadershipError is err, the failure of a batch's leadership fence, as Apply returns it.
func leadershipError(projectionName string, err error) error {
	if errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrLeaseReleased) {
		return fmt.Errorf("postgres: batch of %q not committed: %w: %w", projectionName, projection.ErrLeadershipLost, err)
	}
	return fmt.Errorf("postgres: batch of %q: %w", projectionName, err)
}
