// Check: every statement of a projection prepared against PostgreSQL before a single event is
// consumed, and the errors that name the statements it cannot prepare.

package declarative

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// CheckError is a statement PostgreSQL could not prepare.
type CheckError struct {
	Topic     string // the handler's topic; empty for the schema and the batch SQL
	Batch     bool   // the statement is one of the batch SQL
	Statement int    // 1-based statement number within the handler (or batch SQL); 0: none
	Line      int    // line of the handler's (or batch) SQL the statement starts on
	Err       error
}

// Error implements error.
func (e *CheckError) Error() string {
	if e.Batch && e.Statement == 0 {
		return fmt.Sprintf("batch: %v", pgMessage(e.Err))
	}
	if e.Batch {
		return fmt.Sprintf("batch: statement %d (line %d of the SQL): %v", e.Statement, e.Line, pgMessage(e.Err))
	}
	if e.Topic == "" {
		return fmt.Sprintf("schema: %v", pgMessage(e.Err))
	}
	return fmt.Sprintf("handler %q: statement %d (line %d of the SQL): %v", e.Topic, e.Statement, e.Line, pgMessage(e.Err))
}

// Unwrap returns the underlying error.
func (e *CheckError) Unwrap() error { return e.Err }

func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Hint != "" {
			msg += " (hint: " + pe.Hint + ")"
		}
		return msg + " [SQLSTATE " + pe.Code + "]"
	}
	return err.Error()
}

// Check prepares every statement of every handler against PostgreSQL, inside a transaction that
// first applies the schema and is then rolled back, so it changes nothing and works before
// Migrate has run. It returns every statement that cannot be prepared, each as a *CheckError,
// joined. A failure to reach PostgreSQL is returned as it is.
func (p *Projection) Check(ctx context.Context, db Conn) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if strings.TrimSpace(p.spec.Schema) != "" {
		// The rolled-back schema must not race a replica's Migrate either: DDL on the same
		// names from two transactions fails with a unique violation in the system catalogs.
		if err := lockSchemas(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, p.spec.Schema); err != nil {
			if isConnErr(err) {
				return err
			}
			return &CheckError{Err: err}
		}
	}
	var errs []error
	prepare := func(ce *CheckError, s Statement) error {
		// A savepoint per statement, so one failure does not hide the next.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		_, err = sp.Prepare(ctx, "", s.SQL)
		_ = sp.Rollback(ctx)
		if err != nil {
			if isConnErr(err) {
				return err
			}
			ce.Line, ce.Err = s.Line, err
			errs = append(errs, ce)
		}
		return nil
	}
	if p.batch != nil {
		if err := checkEvents(ctx, tx); err != nil {
			return err
		}
	}
	for i, s := range p.batch {
		if err := prepare(&CheckError{Batch: true, Statement: i + 1}, s); err != nil {
			return err
		}
	}
	for _, topic := range p.topics {
		if p.batch != nil {
			break
		}
		for i, s := range p.handlers[topic].stmts {
			if err := prepare(&CheckError{Topic: topic, Statement: i + 1}, s); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

func isConnErr(err error) bool {
	var pe *pgconn.PgError
	return !errors.As(err, &pe)
}
