// Generations: each projection's tracking has a generation, incremented by every change that can
// move its position back (rewind, reset, swap of versions), so that waiters order the states
// they learn from reads and notifications: within a generation positions only go forward, and a
// later generation supersedes every state of an earlier one, whatever its position.

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// nextGeneration increments the generation of the projection $1 (from 0, without a row, to 1)
// and returns it as generation. The row lock it takes orders concurrent increments in commit
// order.
const nextGeneration = `INSERT INTO projector_tracking_generations AS t (projection, generation) VALUES ($1, 1)
	ON CONFLICT (projection) DO UPDATE SET generation = t.generation + 1
	RETURNING t.generation`

// loadForWait reads, in one statement (one snapshot), what the waiters of name compare against:
// its tracking row and its generation. A partition without a row of its own counts at its
// projection's row, where it starts (see projection.Runner), in the partition's generation.
// ok is false when neither row exists.
func (s *Store) loadForWait(ctx context.Context, name string) (tracking.State, bool, uint64, error) {
	base := ""
	if b, _, isPartition := projection.SplitPartitionName(name); isPartition && s.partitionsOf(b) > 0 {
		base = b
	}
	var own, start []int64
	var generation int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT ARRAY[commit_position, prepare_position, checkpoint_position] FROM projector_tracking WHERE projection = $1),
		(SELECT ARRAY[commit_position, prepare_position, checkpoint_position] FROM projector_tracking WHERE projection = $2 AND $2 <> ''),
		coalesce((SELECT generation FROM projector_tracking_generations WHERE projection = $1), 0)`,
		name, base).Scan(&own, &start, &generation)
	if err != nil {
		return tracking.State{}, false, 0, fmt.Errorf("postgres: load tracking of %q: %w", name, err)
	}
	row := own
	if row == nil {
		row = start
	}
	if len(row) != 3 {
		return tracking.State{}, false, uint64(generation), nil
	}
	st := tracking.State{Last: tracking.Position{Commit: uint64(row[0]), Prepare: uint64(row[1])}, Checkpoint: uint64(row[2])}
	return st, true, uint64(generation), nil
}

// notifyPartitions starts a new generation, inside tx, for each partition of base whose
// tracking row tx deleted (deleted) and for partitions 0 to declared-1 (those without a row of
// their own counted at base's row, which tx changed), and notifies their waiters of s, where
// they start now. It returns the partitions' new generations, for rewound after the commit.
func (s *Store) notifyPartitions(ctx context.Context, tx pgx.Tx, base string, deleted []string, declared int, st tracking.State) (map[string]uint64, error) {
	names := append([]string(nil), deleted...)
	for i := range declared {
		names = append(names, projection.PartitionName(base, i))
	}
	generations := make(map[string]uint64, len(names))
	for _, name := range names {
		if _, done := generations[name]; done {
			continue
		}
		g, err := notifyRewound(ctx, tx, s.opts.Channel, name, st)
		if err != nil {
			return nil, err
		}
		generations[name] = g
	}
	return generations, nil
}
