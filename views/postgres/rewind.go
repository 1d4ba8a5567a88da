// Rewind: a projection's view and tracking go back to its start in one transaction, under the
// projection's leadership.

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// ErrLeaderActive is wrapped by Rewind's error when another session holds the projection's
// leadership lock: a running process leads the projection.
var ErrLeaderActive = errors.New("a running process leads the projection")

var _ projection.Rewinder[pgx.Tx] = (*Store)(nil)

// Rewind implements projection.Rewinder. In one transaction it makes sure no other process
// leads projectionName, runs reset (emptying the view; nil for none), sets the tracking row to
// `to` (for the zero state it deletes the row, so the projection's configured start applies
// on its next run), deletes the events parked after `to` (delivered again, they park again if
// they still fail), and notifies waiters, who see `to` once it commits. It returns the state
// the row held (zero when there was none). On any error nothing is committed.
//
// Leadership: when ctx carries the Lease of projectionName (the runner's online reset runs
// under its lease), the transaction checks, after reset and before touching tracking, that the
// Lease still holds the lock, and fails with an error wrapping projection.ErrLeadershipLost
// otherwise. Without one (an offline reset), it takes the projection's advisory lock for the
// transaction, with the key an Elector of Options.Namespace uses (see LockKey), and fails with
// an error wrapping ErrLeaderActive while a process leads the projection; no process can start
// leading it until the transaction ends.
func (s *Store) Rewind(ctx context.Context, projectionName string, to tracking.State, reset func(ctx context.Context, tx pgx.Tx) error) (tracking.State, error) {
	var from tracking.State
	if err := tracking.CheckStorable(to); err != nil {
		return from, fmt.Errorf("postgres: rewind %q: %w", projectionName, err)
	}
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return from, fmt.Errorf("postgres: rewind %q: begin: %w", projectionName, err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	if l, ok := LeaseFromContext(ctx); !ok || l.Projection() != projectionName {
		if err := s.lockLeadership(ctx, ptx, "rewind", projectionName); err != nil {
			return from, err
		}
	}
	var c, p, cp int64
	err = ptx.QueryRow(ctx, `SELECT commit_position, prepare_position, checkpoint_position
		FROM projector_tracking WHERE projection = $1 FOR UPDATE`, projectionName).Scan(&c, &p, &cp)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return from, fmt.Errorf("postgres: rewind %q: read tracking: %w", projectionName, err)
	default:
		from = tracking.State{Last: tracking.Position{Commit: uint64(c), Prepare: uint64(p)}, Checkpoint: uint64(cp)}
	}
	if reset != nil {
		tx := &Tx{Tx: ptx}
		if err := reset(ctx, tx); err != nil {
			return from, fmt.Errorf("postgres: rewind %q: reset the view: %w", projectionName, err)
		}
		if err := tx.Flush(ctx); err != nil {
			return from, fmt.Errorf("postgres: rewind %q: reset the view: %w", projectionName, err)
		}
	}
	if err := VerifyLeadership(ctx, ptx); err != nil {
		if errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrLeaseReleased) {
			return from, fmt.Errorf("postgres: rewind of %q not committed: %w: %w", projectionName, projection.ErrLeadershipLost, err)
		}
		return from, fmt.Errorf("postgres: rewind %q: %w", projectionName, err)
	}
	var partitions map[string]uint64
	if to == (tracking.State{}) {
		if partitions, err = s.rewindPartitions(ctx, ptx, projectionName); err != nil {
			return from, err
		}
		_, err = ptx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, projectionName)
	} else {
		_, err = ptx.Exec(ctx, `INSERT INTO projector_tracking (projection, commit_position, prepare_position, checkpoint_position, updated_at)
			VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (projection) DO UPDATE SET commit_position = $2, prepare_position = $3, checkpoint_position = $4, updated_at = now()`,
			projectionName, int64(to.Last.Commit), int64(to.Last.Prepare), int64(to.Checkpoint))
	}
	if err != nil {
		return from, fmt.Errorf("postgres: rewind %q from %v to %v: %w", projectionName, from, to, err)
	}
	// The events parked after `to` are delivered again: they park again if they still fail.
	if _, err := ptx.Exec(ctx, `DELETE FROM projector_parked WHERE projection = $1 AND (commit_position, prepare_position) > ($2, $3)`,
		projectionName, int64(to.Last.Commit), int64(to.Last.Prepare)); err != nil {
		return from, fmt.Errorf("postgres: rewind %q: delete the parked events after %v: %w", projectionName, to, err)
	}
	generation, err := notifyRewound(ctx, ptx, s.opts.Channel, projectionName, to)
	if err != nil {
		return from, err
	}
	if err := ptx.Commit(ctx); err != nil {
		return from, fmt.Errorf("postgres: rewind %q: commit: %w", projectionName, err)
	}
	for name, g := range partitions {
		s.rewound(name, tracking.State{}, g)
	}
	s.rewound(projectionName, to, generation)
	return from, nil
}

// Reset deletes the tracking row of projectionName, so its next run starts afresh, and tells
// the waiters (the zero state, in a new generation). The view's own tables are the caller's to
// clear.
func (s *Store) Reset(ctx context.Context, projectionName string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: reset %q: begin: %w", projectionName, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, projectionName); err != nil {
		return fmt.Errorf("postgres: reset %q: %w", projectionName, err)
	}
	generation, err := notifyRewound(ctx, tx, s.opts.Channel, projectionName, tracking.State{})
	if err != nil {
		return fmt.Errorf("postgres: reset %q: %w", projectionName, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: reset %q: commit: %w", projectionName, err)
	}
	s.rewound(projectionName, tracking.State{}, generation)
	return nil
}

// rewindPartitions deletes the tracking rows of projectionName's partitions (a rewind to the
// start of a projection that runs, or ran, partitioned), under each partition's leadership lock,
// and tells their waiters (those of the partitions SetPartitions declared too, with or without a
// row); it returns the partitions' new generations.
func (s *Store) rewindPartitions(ctx context.Context, tx pgx.Tx, projectionName string) (map[string]uint64, error) {
	rows, err := tx.Query(ctx, `SELECT projection FROM projector_tracking WHERE starts_with(projection, $1) ORDER BY projection FOR UPDATE`,
		projectionName+projection.PartitionSeparator)
	if err != nil {
		return nil, fmt.Errorf("postgres: rewind %q: read the partitions' tracking: %w", projectionName, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: rewind %q: read the partitions' tracking: %w", projectionName, err)
	}
	for _, name := range names {
		if l, ok := LeaseFromContext(ctx); !ok || l.Projection() != name {
			if err := s.lockLeadership(ctx, tx, "rewind", name); err != nil {
				return nil, err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, name); err != nil {
			return nil, fmt.Errorf("postgres: rewind %q: delete the tracking of %q: %w", projectionName, name, err)
		}
	}
	return s.notifyPartitions(ctx, tx, projectionName, names, s.partitionsOf(projectionName), tracking.State{})
}

// rewound hands the state a committed rewind left to this store's own waiters at once, as its
// notification will moments later: a wait sent to the same process right after an online reset
// must not be answered from the state before it. generation is the rewind's: the notifications
// of commits before it, delivered later, are ignored.
func (s *Store) rewound(projectionName string, to tracking.State, generation uint64) {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	if l != nil {
		l.notified(projectionName, to, generation)
	}
}

// lockLeadership takes projectionName's leadership lock for the transaction tx, or fails with
// an error wrapping ErrLeaderActive when a process holds it; what names the operation.
func (s *Store) lockLeadership(ctx context.Context, tx pgx.Tx, what, projectionName string) error {
	key, namespace, err := leaderKey(ctx, tx, s.opts.Namespace, projectionName)
	if err != nil {
		return fmt.Errorf("postgres: %s %q: leadership lock: %w", what, projectionName, err)
	}
	var free bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&free); err != nil {
		return fmt.Errorf("postgres: %s %q: take the leadership lock %d: %w", what, projectionName, key, err)
	}
	if !free {
		return fmt.Errorf("postgres: %s %q: another session holds its leadership lock %d (namespace %q): %w", what, projectionName, key, namespace, ErrLeaderActive)
	}
	return nil
}
