// Dead-letter tools: read one dead letter, list them all, count them, purge them.

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/projector-dev/projector/tracking"
)

// ErrNoDeadLetter is wrapped by the errors of the dead-letter tools when the dead letter asked
// for does not exist (or belongs to another projection).
var ErrNoDeadLetter = errors.New("no such dead letter")

// deadLetterColumns are the columns scanDeadLetter reads, in its order.
const deadLetterColumns = `id, projection, event_id, event_type, stream, revision, commit_position, prepare_position,
	content_type, data, metadata, created, error, failed_at`

// scanDeadLetter reads one row of deadLetterColumns.
func scanDeadLetter(row pgx.CollectableRow) (DeadLetterRecord, error) {
	var r DeadLetterRecord
	var revision, commit, prepare int64
	err := row.Scan(&r.ID, &r.Projection, &r.Event.ID, &r.Event.Type, &r.Event.Stream, &revision, &commit, &prepare,
		&r.Event.ContentType, &r.Event.Data, &r.Event.Metadata, &r.Event.Created, &r.Error, &r.FailedAt)
	if err != nil {
		return r, err
	}
	if revision < 0 || commit < 0 || prepare < 0 {
		return r, fmt.Errorf("dead letter %d: negative revision or position (%d, %d, %d)", r.ID, revision, commit, prepare)
	}
	r.Event.Revision = uint64(revision)
	r.Event.Position = tracking.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
	r.Event.Created = r.Event.Created.UTC()
	r.FailedAt = r.FailedAt.UTC()
	return r, nil
}

// ListAllDeadLetters returns the dead letters of every projection, by projection name and then
// in log order, at most limit of them when limit > 0.
func ListAllDeadLetters(ctx context.Context, q Querier, limit int) ([]DeadLetterRecord, error) {
	if limit < 0 {
		return nil, fmt.Errorf("postgres: list dead letters: limit %d: must not be negative", limit)
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = int64(limit)
	}
	rows, err := q.Query(ctx, `SELECT `+deadLetterColumns+` FROM projector_dead_letters
		ORDER BY projection, commit_position, prepare_position, id LIMIT $1`, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	return out, nil
}

// GetDeadLetter returns the dead letter id, or an error wrapping ErrNoDeadLetter.
func GetDeadLetter(ctx context.Context, q Querier, id int64) (DeadLetterRecord, error) {
	rows, err := q.Query(ctx, `SELECT `+deadLetterColumns+` FROM projector_dead_letters WHERE id = $1`, id)
	if err != nil {
		return DeadLetterRecord{}, fmt.Errorf("postgres: dead letter %d: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanDeadLetter)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return r, fmt.Errorf("postgres: dead letter %d: %w", id, ErrNoDeadLetter)
	case err != nil:
		return r, fmt.Errorf("postgres: dead letter %d: %w", id, err)
	}
	return r, nil
}

// CountDeadLetters returns how many dead letters each projection has; projections without any
// are absent.
func CountDeadLetters(ctx context.Context, q Querier) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT projection, count(*) FROM projector_dead_letters GROUP BY projection`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count dead letters: %w", err)
	}
	out := map[string]int64{}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: count dead letters: %w", err)
	}
	return out, nil
}

// Execer runs a statement: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PurgeDeadLetters deletes the dead letters of projectionName: the one with id when id > 0
// (an error wrapping ErrNoDeadLetter when projectionName has none with that id), or all of
// them when id is 0. It returns how many it deleted.
func PurgeDeadLetters(ctx context.Context, q Execer, projectionName string, id int64) (int64, error) {
	if id < 0 {
		return 0, fmt.Errorf("postgres: purge dead letters of %q: id %d: must be positive (or 0 for all)", projectionName, id)
	}
	tag, err := q.Exec(ctx, `DELETE FROM projector_dead_letters WHERE projection = $1 AND ($2 = 0 OR id = $2)`, projectionName, id)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge dead letters of %q: %w", projectionName, err)
	}
	if id > 0 && tag.RowsAffected() == 0 {
		return 0, fmt.Errorf("postgres: purge dead letter %d of %q: %w", id, projectionName, ErrNoDeadLetter)
	}
	return tag.RowsAffected(), nil
}
