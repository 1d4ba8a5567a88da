package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/projector-dev/projector/projection"
)

// Tx is the transaction the store hands to projections (as a pgx.Tx). Besides everything a
// pgx.Tx does, it can queue statements (see Queue) that are sent together in one pgx.Batch:
// once per event batch, or earlier when the handler runs a statement directly, so statements
// always run in the order they were issued.
type Tx struct {
	pgx.Tx
	batch   *pgx.Batch
	queries []string
}

var _ projection.Flusher = (*Tx)(nil)

// Queue adds a statement to the pipeline.
func (t *Tx) Queue(sql string, args ...any) {
	if t.batch == nil {
		t.batch = &pgx.Batch{}
	}
	t.batch.Queue(sql, args...)
	t.queries = append(t.queries, sql)
}

// TakeBegin returns the statements that begin the transaction when they have not been sent yet
// (the store sends a batch's BEGIN with its first statements) and nothing is queued, and counts
// them as sent: a caller about to send statements on the connection directly (Conn) sends these
// first, in the same round trip. It returns nil otherwise.
func (t *Tx) TakeBegin() []string {
	if l, ok := t.Tx.(*lazyTx); ok && len(t.queries) == 0 {
		return l.takeBegin()
	}
	return nil
}

// Pending is the number of queued statements not yet sent.
func (t *Tx) Pending() int { return len(t.queries) }

// Flush sends the queued statements in one round trip and reports the first failure, naming
// the statement.
func (t *Tx) Flush(ctx context.Context) error {
	if len(t.queries) == 0 {
		return nil
	}
	b, queries := t.batch, t.queries
	t.batch, t.queries = nil, nil
	br := t.Tx.SendBatch(ctx, b)
	for i, q := range queries {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("queued statement %d of %d (%s): %w", i+1, len(queries), abbreviate(q), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("send %d queued statements: %w", len(queries), err)
	}
	return nil
}

// Exec flushes queued statements, then runs sql.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.Flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.Tx.Exec(ctx, sql, args...)
}

// Query flushes queued statements, then runs sql.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.Flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

// QueryRow flushes queued statements, then runs sql.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.Flush(ctx); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

// SendBatch flushes queued statements, then sends b.
func (t *Tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.Flush(ctx); err != nil {
		return errBatch{err}
	}
	return t.Tx.SendBatch(ctx, b)
}

// CopyFrom flushes queued statements, then copies.
func (t *Tx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.Flush(ctx); err != nil {
		return 0, err
	}
	return t.Tx.CopyFrom(ctx, table, columns, src)
}

// Begin flushes queued statements, then starts a savepoint.
func (t *Tx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.Flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Begin(ctx)
}

// Commit is refused: the store commits the batch together with the tracking advance.
func (t *Tx) Commit(context.Context) error {
	return errors.New("postgres: a projection must not commit the batch transaction")
}

// Rollback is refused: return an error from the handler instead.
func (t *Tx) Rollback(context.Context) error {
	return errors.New("postgres: a projection must not roll back the batch transaction; return an error instead")
}

// Queue queues sql on tx when tx is the store's *Tx, so it is pipelined with the rest of the
// batch; on any other pgx.Tx it runs sql at once. Handlers use it to write without a round trip
// per statement.
func Queue(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	if t, ok := tx.(*Tx); ok {
		t.Queue(sql, args...)
		return nil
	}
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

func abbreviate(sql string) string {
	const n = 80
	if len(sql) > n {
		return sql[:n] + "…"
	}
	return sql
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
