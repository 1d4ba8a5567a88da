// Swapping versions: the tables of one version replace the live tables of another in one
// transaction, at one position.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// ErrNotCaughtUp is wrapped by Swap's error when the incoming version has not reached the
// serving version's position: nothing changed, try again later.
var ErrNotCaughtUp = errors.New("the new version has not caught up with the serving version")

// Swap is one exchange of a projection's serving version.
type Swap struct {
	// Projection is the projection's name.
	Projection string
	// In is the version to serve, whose tables are in InSchema and whose tracking row is
	// VersionTracking(Projection, In).
	In       string
	InSchema string
	// Out is the serving version; its tables, the relations OutRelations of the live schema,
	// move to ArchiveSchema(Projection, Out) and its tracking state to
	// VersionTracking(Projection, Out).
	Out          string
	OutRelations []Relation
	// OutPartitions is how many partitions Out runs in (0 or 1: not partitioned). Out's
	// position is then the lowest of its partitions' rows; the swap deletes those rows, so the
	// partitions of In, if it is partitioned, start at In's state.
	OutPartitions int
	// CaughtUp requires In to have reached Out's position (a new version); a rollback does
	// not: the version swapped back catches up from its own position.
	CaughtUp bool
	// LockTimeout bounds the wait for the live tables' locks (default 2s): a reader holding
	// them longer makes the swap fail, to be tried again, rather than queue every reader
	// behind it.
	LockTimeout time.Duration
	// CatchUpWait bounds how long a swap with CaughtUp, holding the live tables (readers
	// wait meanwhile), waits for In to reach the position at which Out stopped (default
	// DefaultCatchUpWait); past it the swap fails with ErrNotCaughtUp. On a busy log the serving version
	// commits between any check and the swap's locks, so only a wait with Out held still
	// lets a version that keeps up with it in.
	CatchUpWait time.Duration
}

// DefaultCatchUpWait is Swap.CatchUpWait's default.
const DefaultCatchUpWait = 500 * time.Millisecond

// Swapped says what a Swap did.
type Swapped struct {
	// State is the serving tracking state after the swap (In's).
	State tracking.State
	// Blocked is how long the live tables were locked: from the moment the swap held their
	// locks to its commit, the time a reader of them may have waited.
	Blocked time.Duration
}

// Swap serves sw.In in place of sw.Out, in one transaction: it locks the live tables (ACCESS
// EXCLUSIVE: a batch in flight on them finishes first, and readers wait for the commit) and
// Out's tracking, which stops Out; then In's tables and tracking (see awaitIncoming: with
// sw.CaughtUp it waits up to sw.CatchUpWait for In to reach Out's position, and fails with
// ErrNotCaughtUp otherwise); it fails with ErrDeferredIndexes while the incoming version has
// secondary indexes still to build (see PrepareShadow); it moves Out's tables to its
// archive schema and In's into the live schema (ALTER ... SET SCHEMA takes indexes,
// constraints and owned sequences along), gives the projection's tracking row In's state and
// keeps Out's under Out's version name, records In as serving and Out as archived, and
// notifies waiters. Readers see the old tables up to the commit and the new ones after it,
// never an empty or missing one.
func (s *Store) Swap(ctx context.Context, sw Swap) (Swapped, error) {
	var res Swapped
	fail := func(what string, err error) (Swapped, error) {
		return res, fmt.Errorf("postgres: swap version %s of %q in for %s: %s: %w", sw.In, sw.Projection, sw.Out, what, err)
	}
	live, err := s.trackingSchema(ctx)
	if err != nil {
		return fail("read the live schema", err)
	}
	archive := ArchiveSchema(sw.Projection, sw.Out)
	lockTimeout := sw.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = 2 * time.Second
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail("begin", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	incoming, err := relations(ctx, tx, sw.InSchema)
	if err != nil {
		return fail("list the incoming tables", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, sw.InSchema).Scan(&exists); err != nil {
		return fail("find the incoming schema", err)
	}
	if !exists {
		return fail("find the incoming schema", fmt.Errorf("schema %s does not exist (a version adopted without a rebuild keeps no tables to swap back)", sw.InSchema))
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", lockTimeout.Milliseconds())); err != nil {
		return fail("set the lock timeout", err)
	}
	var outgoing []Relation
	for _, r := range sw.OutRelations {
		var present bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2)`, live, r.Name).Scan(&present); err != nil {
			return fail("find the live tables", err)
		}
		if present {
			outgoing = append(outgoing, r)
		}
	}
	// Before readers wait for anything: a version with indexes still to build cannot swap.
	if pending, err := deferredOf(ctx, tx, sw.InSchema); err != nil {
		return fail("read the deferred indexes", err)
	} else if len(pending) > 0 {
		return fail("check the indexes", fmt.Errorf("%w: %d in %s", ErrDeferredIndexes, len(pending), sw.InSchema))
	}
	// Out stops first: a batch of it in flight finishes, the next waits for the swap, so the
	// position In must reach stays put while In catches up.
	locked := time.Now()
	if err := lockAll(ctx, tx, live, outgoing); err != nil {
		return fail("lock the live tables", err)
	}
	if err := lockVersion(ctx, tx, sw.Projection, sw.Out); err != nil {
		return fail("lock the serving version", err)
	}
	serving, servingOK, err := lockServing(ctx, tx, sw.Projection, sw.OutPartitions)
	if err != nil {
		return fail("lock tracking", err)
	}
	in, err := awaitIncoming(ctx, tx, sw, incoming, serving.Reached())
	if err != nil {
		return fail("lock the incoming version", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{archive}.Sanitize()); err != nil {
		return fail("create the archive schema", err)
	}
	for _, r := range outgoing {
		if _, err := tx.Exec(ctx, `ALTER `+r.Kind+` `+pgx.Identifier{live, r.Name}.Sanitize()+` SET SCHEMA `+pgx.Identifier{archive}.Sanitize()); err != nil {
			return fail("archive "+r.Name, err)
		}
	}
	for _, r := range incoming {
		if _, err := tx.Exec(ctx, `ALTER `+r.Kind+` `+pgx.Identifier{sw.InSchema, r.Name}.Sanitize()+` SET SCHEMA `+pgx.Identifier{live}.Sanitize()); err != nil {
			return fail("move "+r.Name+" in", err)
		}
	}
	if err := dropIfEmpty(ctx, tx, sw.InSchema); err != nil {
		return fail("drop the incoming schema", err)
	}
	if servingOK {
		if err := setTracking(ctx, tx, VersionTracking(sw.Projection, sw.Out), serving); err != nil {
			return fail("keep the outgoing position", err)
		}
	}
	if err := setTracking(ctx, tx, sw.Projection, in); err != nil {
		return fail("switch tracking", err)
	}
	rows, err := tx.Query(ctx, `DELETE FROM projector_tracking WHERE starts_with(projection, $1) RETURNING projection`, sw.Projection+projection.PartitionSeparator)
	if err != nil {
		return fail("delete the partitions' tracking", err)
	}
	deleted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail("delete the partitions' tracking", err)
	}
	// The partitions' waiters, of Out's partitions or of In's to be, start at In's state.
	partitions, err := s.notifyPartitions(ctx, tx, sw.Projection, deleted, max(sw.OutPartitions, s.partitionsOf(sw.Projection)), in)
	if err != nil {
		return fail("notify the partitions", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, VersionTracking(sw.Projection, sw.In)); err != nil {
		return fail("switch tracking", err)
	}
	// Parked streams belong to the version that parked them: they follow its tracking.
	if err := moveParked(ctx, tx, sw.Projection, VersionTracking(sw.Projection, sw.Out)); err != nil {
		return fail("keep the outgoing version's parked streams", err)
	}
	if err := moveParked(ctx, tx, VersionTracking(sw.Projection, sw.In), sw.Projection); err != nil {
		return fail("switch the parked streams", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE projector_versions SET state = 'archived' WHERE projection = $1 AND version = $2`, sw.Projection, sw.Out); err != nil {
		return fail("record the versions", err)
	}
	tag, err := tx.Exec(ctx, `UPDATE projector_versions SET state = 'serving', swapped_at = now() WHERE projection = $1 AND version = $2`, sw.Projection, sw.In)
	if err != nil {
		return fail("record the versions", err)
	}
	if tag.RowsAffected() != 1 {
		return fail("record the versions", fmt.Errorf("version %s is not stored", sw.In))
	}
	generation, err := notifyRewound(ctx, tx, s.opts.Channel, sw.Projection, in)
	if err != nil {
		return fail("notify", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail("commit", err)
	}
	for name, g := range partitions {
		s.rewound(name, in, g)
	}
	s.rewound(sw.Projection, in, generation)
	res.State, res.Blocked = in, time.Since(locked)
	return res, nil
}

// awaitIncoming locks the tables of the incoming version (a batch of it in flight finishes
// first) and its tracking, and returns its state. With sw.CaughtUp it must have reached
// target: while it has not, the locks are given back (to a savepoint) for its next batch, and
// taken again, for at most sw.CatchUpWait; then it fails with ErrNotCaughtUp. It fails with
// ErrDeferredIndexes while the incoming version has deferred indexes to build.
func awaitIncoming(ctx context.Context, tx pgx.Tx, sw Swap, incoming []Relation, target uint64) (tracking.State, error) {
	wait := sw.CatchUpWait
	if wait <= 0 {
		wait = DefaultCatchUpWait
	}
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		if _, err := tx.Exec(ctx, `SAVEPOINT projector_incoming`); err != nil {
			return tracking.State{}, err
		}
		if err := lockAll(ctx, tx, sw.InSchema, incoming); err != nil {
			return tracking.State{}, fmt.Errorf("lock the incoming tables: %w", err)
		}
		if pending, err := deferredOf(ctx, tx, sw.InSchema); err != nil {
			return tracking.State{}, fmt.Errorf("read the deferred indexes: %w", err)
		} else if len(pending) > 0 {
			return tracking.State{}, fmt.Errorf("%w: %d in %s", ErrDeferredIndexes, len(pending), sw.InSchema)
		}
		if err := lockVersion(ctx, tx, sw.Projection, sw.In); err != nil {
			return tracking.State{}, err
		}
		in, _, err := lockTracking(ctx, tx, VersionTracking(sw.Projection, sw.In))
		if err != nil {
			return tracking.State{}, err
		}
		if !sw.CaughtUp || in.Reached() >= target {
			return in, nil
		}
		if time.Now().After(deadline) {
			return tracking.State{}, fmt.Errorf("%w: it is at %d, the serving version at %d after %s", ErrNotCaughtUp, in.Reached(), target, wait)
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT projector_incoming`); err != nil {
			return tracking.State{}, err
		}
		select {
		case <-ctx.Done():
			return tracking.State{}, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// lockAll takes ACCESS EXCLUSIVE locks on the relations rels of schema (sequences need none).
func lockAll(ctx context.Context, tx pgx.Tx, schema string, rels []Relation) error {
	for _, r := range rels {
		if r.Kind == "SEQUENCE" {
			continue
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{schema, r.Name}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
	}
	return nil
}

// lockVersion locks the row of version of projection in projector_versions, which the swap
// changes at its end, before the version's tracking row: in the order a batch of the version
// takes them (its tables, the row in its version check, its tracking row), so that a batch
// that writes no table cannot hold the row while it waits for the swap's tracking lock.
func lockVersion(ctx context.Context, tx pgx.Tx, projection, version string) error {
	_, err := tx.Exec(ctx, `SELECT 1 FROM projector_versions WHERE projection = $1 AND version = $2 FOR NO KEY UPDATE`, projection, version)
	if err != nil {
		return fmt.Errorf("version %s of %q: %w", version, projection, err)
	}
	return nil
}

// lockServing reads and locks the tracking of the serving version of name: its row, or for one
// in partitions partitions the lowest of the partitions' rows (a partition without a row of
// its own counts at name's row, where it starts).
func lockServing(ctx context.Context, tx pgx.Tx, name string, partitions int) (tracking.State, bool, error) {
	base, baseOK, err := lockTracking(ctx, tx, name)
	if err != nil || partitions < 2 {
		return base, baseOK, err
	}
	var low tracking.State
	anyRow := baseOK
	for i := range partitions {
		st, ok, err := lockTracking(ctx, tx, projection.PartitionName(name, i))
		if err != nil {
			return tracking.State{}, false, err
		}
		if !ok {
			st = base
		}
		anyRow = anyRow || ok
		if i == 0 || st.Reached() < low.Reached() {
			low = st
		}
	}
	return low, anyRow, nil
}

// lockTracking reads and locks the tracking row of name; ok is false when it has none.
func lockTracking(ctx context.Context, tx pgx.Tx, name string) (st tracking.State, ok bool, err error) {
	var c, p, cp int64
	err = tx.QueryRow(ctx, `SELECT commit_position, prepare_position, checkpoint_position
		FROM projector_tracking WHERE projection = $1 FOR UPDATE`, name).Scan(&c, &p, &cp)
	if errors.Is(err, pgx.ErrNoRows) {
		return tracking.State{}, false, nil
	}
	if err != nil {
		return tracking.State{}, false, fmt.Errorf("tracking row of %q: %w", name, err)
	}
	return tracking.State{Last: tracking.Position{Commit: uint64(c), Prepare: uint64(p)}, Checkpoint: uint64(cp)}, true, nil
}

// setTracking gives name the tracking state st (no row for the zero state).
func setTracking(ctx context.Context, tx pgx.Tx, name string, st tracking.State) error {
	if st == (tracking.State{}) {
		_, err := tx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, name)
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO projector_tracking (projection, commit_position, prepare_position, checkpoint_position, updated_at)
		VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (projection) DO UPDATE SET commit_position = $2, prepare_position = $3, checkpoint_position = $4, updated_at = now()`,
		name, int64(st.Last.Commit), int64(st.Last.Prepare), int64(st.Checkpoint))
	return err
}

// dropIfEmpty drops schema when nothing is left in it (objects other than relations, such as
// functions or types its schema SQL created, keep it).
func dropIfEmpty(ctx context.Context, tx pgx.Tx, schema string) error {
	var left bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_namespace n ON n.oid = d.refobjid
		WHERE d.refclassid = 'pg_namespace'::regclass AND n.nspname = $1)`, schema).Scan(&left); err != nil {
		return err
	}
	if left {
		return nil
	}
	_, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize())
	return err
}
