package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
)

// DeadLetterRecord is one event a projection skipped under the skip error policy, as
// projector_dead_letters holds it (Store.DeadLetter writes it inside the batch transaction).
type DeadLetterRecord struct {
	// ID orders the records in the order they were written.
	ID int64 `json:"id"`
	// Projection is the projection that skipped the event.
	Projection string `json:"projection"`
	// Event is the skipped event, with its data and metadata as stored.
	Event projection.Event `json:"event"`
	// Error is the handler's error.
	Error string `json:"error"`
	// FailedAt is when the event failed and the record was written.
	FailedAt time.Time `json:"failed_at"`
}

// Querier runs a query: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ListDeadLetters returns the dead letters of projectionName in log order (by commit and
// prepare position, then by ID), at most limit of them when limit > 0. Through a transaction it
// also sees dead letters written earlier in that transaction.
func ListDeadLetters(ctx context.Context, q Querier, projectionName string, limit int) ([]DeadLetterRecord, error) {
	if limit < 0 {
		return nil, fmt.Errorf("postgres: list dead letters of %q: limit %d: must not be negative", projectionName, limit)
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = int64(limit)
	}
	rows, err := q.Query(ctx, `SELECT `+deadLetterColumns+`
		FROM projector_dead_letters WHERE projection = $1
		ORDER BY commit_position, prepare_position, id LIMIT $2`, projectionName, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters of %q: %w", projectionName, err)
	}
	out, err := pgx.CollectRows(rows, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters of %q: %w", projectionName, err)
	}
	return out, nil
}
