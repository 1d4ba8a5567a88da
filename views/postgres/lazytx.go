// A batch transaction whose BEGIN travels with its first statements: one round trip fewer per
// batch than pgx's Begin, which waits for BEGIN's answer alone.

package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// beginTimeout bounds the sending of a pending BEGIN where pgx gives no context (Conn,
// LargeObjects).
const beginTimeout = 30 * time.Second

// lazyTx is a pgx.Tx on conn that has not sent its BEGIN yet: the statements that begin it are
// sent ahead of the first statements run in it (in the same round trip when those are a
// batch), or taken by the caller to send itself (takeBegin). Commit and Rollback of a
// transaction that never sent them send nothing.
type lazyTx struct {
	conn  *pgx.Conn
	begin []string // the statements that begin the transaction until sent; nil once sent
	real  pgx.Tx   // pgx's handle on the transaction, made for savepoints and large objects
	done  bool     // committed or rolled back
}

// newLazyTx returns a transaction on conn begun by begin (BEGIN, then any SET LOCAL).
func newLazyTx(conn *pgx.Conn, begin []string) *lazyTx {
	return &lazyTx{conn: conn, begin: begin}
}

// takeBegin returns the statements that begin the transaction, if they are not sent yet, and
// counts them as sent: the caller sends them, in order, before anything else in the
// transaction.
func (t *lazyTx) takeBegin() []string {
	b := t.begin
	t.begin = nil
	return b
}

// send sends the pending BEGIN on its own.
func (t *lazyTx) send(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	if begin := t.takeBegin(); len(begin) > 0 {
		q := strings.Join(begin, "; ") // one round trip (simple protocol)
		if _, err := t.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("begin the transaction (%s): %w", q, err)
		}
	}
	return nil
}

// handle returns pgx's handle on the transaction, for what only pgx can make of one
// (savepoints, large objects), from a batch that begins it (pgx's Batch.BeginTx): with the
// pending BEGIN, or with a statement that changes nothing once that has been sent. The handle
// is never nil: when the batch fails it is closed, and its methods fail with pgx.ErrTxClosed.
func (t *lazyTx) handle(ctx context.Context) (pgx.Tx, error) {
	if t.real != nil {
		return t.real, nil
	}
	b := &pgx.Batch{}
	begin := t.takeBegin()
	if len(begin) == 0 {
		b.BeginTx(pgx.TxOptions{BeginQuery: "SELECT 1"}) // already begun: pgx needs a statement to run
	} else {
		b.BeginTx(pgx.TxOptions{BeginQuery: begin[0]})
		for _, s := range begin[1:] {
			b.Queue(s)
		}
	}
	br := t.conn.SendBatch(ctx, b)
	t.real = br.Tx()
	if err := br.Close(); err != nil {
		return t.real, fmt.Errorf("begin the transaction: %w", err)
	}
	if t.done { // committed or rolled back already: the handle must not run anything
		_ = t.real.Rollback(ctx)
	}
	return t.real, nil
}

// Begin implements pgx.Tx: a savepoint.
func (t *lazyTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if t.done {
		return nil, pgx.ErrTxClosed
	}
	real, err := t.handle(ctx)
	if err != nil {
		return nil, err
	}
	return real.Begin(ctx)
}

// Commit implements pgx.Tx.
func (t *lazyTx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.done = true
	if t.begin != nil {
		return nil // nothing was sent
	}
	tag, err := t.conn.Exec(ctx, "COMMIT")
	if err != nil {
		if t.conn.PgConn().TxStatus() != 'I' {
			_ = t.conn.Close(ctx)
		}
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback implements pgx.Tx.
func (t *lazyTx) Rollback(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.done = true
	if t.begin != nil {
		return nil // nothing was sent
	}
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = t.conn.Close(ctx) // a connection in an unknown state is not reused
		return err
	}
	return nil
}

// CopyFrom implements pgx.Tx.
func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.send(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, table, columns, src)
}

// SendBatch implements pgx.Tx: a pending BEGIN goes first in b's round trip, unless it sets
// the search path: pgx prepares a batch's new statements before it runs any, which must not
// happen under another search path than theirs, so that BEGIN goes on its own first.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.done {
		return errBatch{pgx.ErrTxClosed}
	}
	if len(t.begin) > 1 {
		if err := t.send(ctx); err != nil {
			return errBatch{err}
		}
	}
	begin := t.takeBegin()
	if len(begin) == 0 {
		return t.conn.SendBatch(ctx, b)
	}
	with := &pgx.Batch{}
	for _, s := range begin {
		with.Queue(s)
	}
	with.QueuedQueries = append(with.QueuedQueries, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, with)
	for _, s := range begin {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return errBatch{fmt.Errorf("begin the transaction (%s): %w", s, err)}
		}
	}
	return br
}

// LargeObjects implements pgx.Tx. It sends a pending BEGIN first; when that fails, the large
// objects' methods fail with pgx.ErrTxClosed.
func (t *lazyTx) LargeObjects() pgx.LargeObjects {
	ctx, cancel := context.WithTimeout(context.Background(), beginTimeout)
	defer cancel()
	real, _ := t.handle(ctx)
	return real.LargeObjects()
}

// Prepare implements pgx.Tx.
func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.send(ctx); err != nil {
		return nil, err
	}
	return t.conn.Prepare(ctx, name, sql)
}

// Exec implements pgx.Tx.
func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.send(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.conn.Exec(ctx, sql, args...)
}

// Query implements pgx.Tx.
func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.send(ctx); err != nil {
		return nil, err
	}
	return t.conn.Query(ctx, sql, args...)
}

// QueryRow implements pgx.Tx.
func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.send(ctx); err != nil {
		return errRow{err}
	}
	return t.conn.QueryRow(ctx, sql, args...)
}

// Conn implements pgx.Tx. It sends a pending BEGIN first: what runs on the connection must run
// in the transaction.
func (t *lazyTx) Conn() *pgx.Conn {
	if len(t.begin) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), beginTimeout)
		defer cancel()
		if err := t.send(ctx); err != nil {
			_ = t.conn.Close(ctx) // nothing may run outside the transaction
		}
	}
	return t.conn
}
