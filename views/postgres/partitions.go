// Partitioned projections in the store: a partitioned projection is tracked by one row per
// partition (projection.PartitionName); its position, for Wait and LoadProjection, is the
// lowest of its partitions'.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// SetPartitions tells the store that projectionName runs in partitions partitions (0 or 1:
// not partitioned), so that Wait and LoadProjection answer for it from its partitions' rows.
func (s *Store) SetPartitions(projectionName string, partitions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partitions == nil {
		s.partitions = map[string]int{}
	}
	if partitions < 2 {
		delete(s.partitions, projectionName)
		return
	}
	s.partitions[projectionName] = partitions
}

// partitionsOf returns how many partitions projectionName runs in; 0 when not partitioned.
func (s *Store) partitionsOf(projectionName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partitions[projectionName]
}

// loadPartition reads the tracking row of a partition; without one, the row of its projection
// (where the partition starts: see projection.Runner), else none.
func (s *Store) loadPartition(ctx context.Context, name string) (tracking.State, bool, error) {
	st, ok, err := s.Load(ctx, name)
	if err != nil || ok {
		return st, ok, err
	}
	if base, _, isPartition := projection.SplitPartitionName(name); isPartition && s.partitionsOf(base) > 0 {
		return s.Load(ctx, base)
	}
	return st, ok, nil
}

// LoadProjection reads the position of projectionName: its tracking row, or for a partitioned
// projection (see SetPartitions) the lowest of its partitions' (a partition without a row of
// its own counts at its projection's row, where it starts). ok is false while neither the
// projection nor any partition has a row.
func (s *Store) LoadProjection(ctx context.Context, projectionName string) (tracking.State, bool, error) {
	n := s.partitionsOf(projectionName)
	if n == 0 {
		return s.Load(ctx, projectionName)
	}
	var low tracking.State
	any := false
	for i := range n {
		st, ok, err := s.loadPartition(ctx, projection.PartitionName(projectionName, i))
		if err != nil {
			return tracking.State{}, false, err
		}
		if !ok {
			st = tracking.State{}
		}
		any = any || ok
		if i == 0 || st.Reached() < low.Reached() {
			low = st
		}
	}
	return low, any, nil
}

// waitPartitions waits until every partition of projectionName has processed commit, and
// returns the lowest of the states the partitions' waits returned. Within a generation a
// partition's state only moves forward, so waiting for each in turn waits for all, unless one
// is rewound (a new generation) meanwhile: it waits for them all again until a pass finds the
// generations of the one before, each partition having then kept its state through the moment
// the earlier pass ended.
func (s *Store) waitPartitions(ctx context.Context, l *listener, projectionName string, partitions int, commit uint64) (tracking.State, error) {
	var seen []uint64
	for {
		low, generations, err := s.waitPartitionsOnce(ctx, l, projectionName, partitions, commit)
		if err != nil || slices.Equal(generations, seen) {
			return low, err
		}
		seen = generations
	}
}

// waitPartitionsOnce waits for each partition of projectionName in turn, returning the lowest of
// their states and their generations.
func (s *Store) waitPartitionsOnce(ctx context.Context, l *listener, projectionName string, partitions int, commit uint64) (tracking.State, []uint64, error) {
	var low tracking.State
	generations := make([]uint64, partitions)
	for i := range partitions {
		st, g, err := l.wait(ctx, projection.PartitionName(projectionName, i), commit)
		generations[i] = g
		if i == 0 || st.Reached() < low.Reached() {
			low = st
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return low, nil, err
			}
			return low, nil, fmt.Errorf("postgres: wait for %q: partition %d: %w", projectionName, i, err)
		}
	}
	return low, generations, nil
}
