// Package tracking holds the contract every view store keeps about how far each projection has
// got in the KurrentDB $all log: the tracked State, the compare-and-set rules for advancing it,
// and the in-process Watermark that Wait calls block on.
//
// Two facts are kept apart (see KurrentDB issues #4970 and #4990): the position of the last
// event a projection processed (inclusive), and the last checkpoint the server reported for its
// filtered subscription (exclusive: the server may report as a checkpoint the position at which
// the next event will be written). A log position P is done when P <= Last.Commit or
// P < Checkpoint.
package tracking

import (
	"errors"
	"fmt"
	"math"
)

// Position is a KurrentDB $all log position. Commit and Prepare are equal on a single node;
// positions are ordered by Commit, then Prepare.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// IsZero reports whether p is the zero position, which no event ever has.
func (p Position) IsZero() bool { return p.Commit == 0 && p.Prepare == 0 }

// Compare returns -1, 0 or +1 as p is before, at or after q in the log.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Prepare < q.Prepare:
		return -1
	case p.Prepare > q.Prepare:
		return 1
	}
	return 0
}

// String formats p as "C:commit/P:prepare", the way KurrentDB tools print positions.
func (p Position) String() string { return fmt.Sprintf("C:%d/P:%d", p.Commit, p.Prepare) }

// MaxStorablePosition is the largest position a view store can record: tracking columns are
// PostgreSQL bigint, so positions above 2^63-1 are rejected rather than wrapped.
const MaxStorablePosition = math.MaxInt64

// ErrPositionTooLarge is wrapped by errors about positions above MaxStorablePosition.
var ErrPositionTooLarge = errors.New("position exceeds 2^63-1 and cannot be stored")

// CheckStorable returns an error wrapping ErrPositionTooLarge if any part of s cannot be stored.
func CheckStorable(s State) error {
	for _, v := range []uint64{s.Last.Commit, s.Last.Prepare, s.Checkpoint} {
		if v > MaxStorablePosition {
			return fmt.Errorf("tracking state %v: %w", s, ErrPositionTooLarge)
		}
	}
	return nil
}

// State is what a view store tracks for one projection.
type State struct {
	// Last is the position of the last event the projection processed (inclusive); zero when
	// it has processed none.
	Last Position `json:"last"`
	// Checkpoint is the last server checkpoint seen past Last (exclusive): every event strictly
	// before it was considered by the filtered subscription. Zero when none.
	Checkpoint uint64 `json:"checkpoint"`
}

// Done reports whether the log position commit has been processed (or filtered out) by the
// projection whose state is s.
func (s State) Done(commit uint64) bool {
	return (!s.Last.IsZero() && commit <= s.Last.Commit) || commit < s.Checkpoint
}

// Reached is the highest commit position P for which Done(P) holds: the position waiters and
// metrics report.
func (s State) Reached() uint64 {
	r := s.Last.Commit
	if s.Checkpoint > 0 && s.Checkpoint-1 > r {
		r = s.Checkpoint - 1
	}
	return r
}

// String formats s for logs and errors.
func (s State) String() string {
	return fmt.Sprintf("last=%s checkpoint=%d", s.Last, s.Checkpoint)
}

// ErrConflict is returned by a store when the tracking row no longer holds the state the
// writer expected: another instance advanced the projection, and this writer must stop.
var ErrConflict = errors.New("tracking position moved under this writer (another instance owns the projection)")

// ErrUnknownProjection is returned by Wait and Load for a projection a store has never tracked
// when the caller asked for a known one.
var ErrUnknownProjection = errors.New("unknown projection")
