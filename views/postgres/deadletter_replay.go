// Dead-letter replay: dead letters re-applied through the projection's current handlers and
// removed from the table in one transaction, under the projection's leadership.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
)

// ErrReplayFailed is wrapped by ReplayDeadLetters' error when the projection's handler still
// fails on a dead letter (or no longer handles its event type): nothing was committed and the
// dead letters stay in place.
var ErrReplayFailed = errors.New("the handler failed on the dead letter")

// ReplayDeadLetters re-applies dead letters of p through p.Handle and deletes them, all in one
// transaction: the one with id when id > 0, or every dead letter of p when id is 0, in log
// order. Each is applied exactly once: the rows are locked (a concurrent replay waits, then
// finds them gone) and deleted in the transaction that applies them. Tracking does not move.
// It returns the dead letters it replayed.
//
// If the handler fails on one (or p no longer handles its event type), nothing is committed
// and the error wraps ErrReplayFailed and names the dead letter. An id that p has no dead
// letter with gives an error wrapping ErrNoDeadLetter.
//
// Leadership: when ctx carries the Lease of p (the daemon replays under the lease of the
// projection it leads), the transaction checks before committing that the Lease still holds
// the lock and fails with an error wrapping projection.ErrLeadershipLost otherwise. Without
// one, it takes the projection's advisory lock for the transaction and fails with an error
// wrapping ErrLeaderActive while a process leads the projection.
func (s *Store) ReplayDeadLetters(ctx context.Context, p projection.Projection[pgx.Tx], id int64) ([]DeadLetterRecord, error) {
	name := p.Name()
	if id < 0 {
		return nil, fmt.Errorf("postgres: replay dead letters of %q: id %d: must be positive (or 0 for all)", name, id)
	}
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: replay dead letters of %q: begin: %w", name, err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	if l, ok := LeaseFromContext(ctx); !ok || l.Projection() != name {
		if err := s.lockLeadership(ctx, ptx, "replay dead letters of", name); err != nil {
			return nil, err
		}
	}
	rows, err := ptx.Query(ctx, `SELECT `+deadLetterColumns+` FROM projector_dead_letters
		WHERE projection = $1 AND ($2 = 0 OR id = $2)
		ORDER BY commit_position, prepare_position, id FOR UPDATE`, name, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: replay dead letters of %q: %w", name, err)
	}
	letters, err := pgx.CollectRows(rows, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("postgres: replay dead letters of %q: %w", name, err)
	}
	if id > 0 && len(letters) == 0 {
		return nil, fmt.Errorf("postgres: replay dead letter %d of %q: %w", id, name, ErrNoDeadLetter)
	}
	topics := p.Topics()
	tx := &Tx{Tx: ptx}
	ids := make([]int64, 0, len(letters))
	for _, dl := range letters {
		if !slices.Contains(topics, dl.Event.Type) {
			return nil, fmt.Errorf("postgres: replay dead letter %d of %q (event %s): the projection no longer handles event type %q (purge the dead letter instead): %w",
				dl.ID, name, dl.Event.ID, dl.Event.Type, ErrReplayFailed)
		}
		err := p.Handle(ctx, tx, dl.Event)
		if err == nil {
			err = tx.Flush(ctx) // a queued statement's error belongs to this event
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: replay dead letter %d of %q (event %s, type %q, stream %q, position %d): %w: %w",
				dl.ID, name, dl.Event.ID, dl.Event.Type, dl.Event.Stream, dl.Event.Position.Commit, ErrReplayFailed, err)
		}
		ids = append(ids, dl.ID)
	}
	if _, err := ptx.Exec(ctx, `DELETE FROM projector_dead_letters WHERE id = ANY($1)`, ids); err != nil {
		return nil, fmt.Errorf("postgres: replay dead letters of %q: delete them: %w", name, err)
	}
	if err := VerifyLeadership(ctx, ptx); err != nil {
		if errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrLeaseReleased) {
			return nil, fmt.Errorf("postgres: replay of the dead letters of %q not committed: %w: %w", name, projection.ErrLeadershipLost, err)
		}
		return nil, fmt.Errorf("postgres: replay dead letters of %q: %w", name, err)
	}
	if err := ptx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: replay dead letters of %q: commit: %w", name, err)
	}
	return letters, nil
}
