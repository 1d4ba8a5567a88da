// Package declarative implements projections written as SQL instead of Go: for each event type,
// one or more SQL statements that use named parameters (@stream_id, @data, ...) bound from the
// event; or batch SQL, statements run once per batch over the relation events, which holds the
// batch's events (see EventColumns). Event content only ever reaches PostgreSQL as bind
// parameters.
//
// A Projection implements projection.Projection[pgx.Tx] for the views/postgres store. Check
// prepares every statement against PostgreSQL, so that mistakes are reported before a single
// event is consumed.
package declarative

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
)

// Handler is the SQL run for one event type.
type Handler struct {
	Topic string // the exact event type
	SQL   string // one or more statements, separated by semicolons
}

// Spec describes a declarative projection: either Handlers, or Topics and Batch.
type Spec struct {
	Name     string    // tracking key
	Schema   string    // idempotent DDL for the projection's tables, run by Migrate
	Reset    string    // SQL that empties the projection's tables, run by ResetView
	Handlers []Handler // in the order they were declared
	// Topics are the event types of a projection with batch SQL.
	Topics []string
	// Batch is SQL run once per batch, statements in order, over the relation events (see
	// EventColumns); it takes no parameters.
	Batch string
}

// Projection is a compiled declarative projection. It is safe for concurrent use.
type Projection struct {
	spec     Spec
	topics   []string
	handlers map[string]*compiled
	batch    []Statement     // the batch SQL's statements, rewritten to read events; nil without
	topicSet map[string]bool // the topics of batch SQL
	// load is how batches reach the relation events: nil until the first batch asks
	// PostgreSQL which columns the batch SQL reads (see columnsRead).
	load atomic.Pointer[loadPlan]
}

type compiled struct {
	topic string
	stmts []Statement
	plan  plan
}

// HandlerError is an error in the SQL of one handler.
type HandlerError struct {
	Topic string
	Err   error
}

// Error implements error.
func (e *HandlerError) Error() string { return fmt.Sprintf("handler %q: %v", e.Topic, e.Err) }

// Unwrap returns the underlying error.
func (e *HandlerError) Unwrap() error { return e.Err }

// New compiles spec. It reports every handler whose SQL cannot be parsed, each as a
// *HandlerError, joined.
func New(spec Spec) (*Projection, error) {
	if spec.Name == "" {
		return nil, errors.New("declarative projection: empty name")
	}
	if strings.TrimSpace(spec.Batch) != "" || len(spec.Topics) > 0 {
		return newBatch(spec)
	}
	if len(spec.Handlers) == 0 {
		return nil, fmt.Errorf("declarative projection %q: no handlers", spec.Name)
	}
	p := &Projection{spec: spec, handlers: make(map[string]*compiled, len(spec.Handlers))}
	var errs []error
	for _, h := range spec.Handlers {
		if _, dup := p.handlers[h.Topic]; dup {
			errs = append(errs, &HandlerError{Topic: h.Topic, Err: errors.New("declared twice")})
			continue
		}
		stmts, err := Parse(h.SQL)
		if err != nil {
			errs = append(errs, &HandlerError{Topic: h.Topic, Err: err})
			continue
		}
		pl, err := newPlan(stmts)
		if err != nil {
			errs = append(errs, &HandlerError{Topic: h.Topic, Err: err})
			continue
		}
		p.handlers[h.Topic] = &compiled{topic: h.Topic, stmts: stmts, plan: pl}
		p.topics = append(p.topics, h.Topic)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Name implements projection.Projection.
func (p *Projection) Name() string { return p.spec.Name }

// Topics implements projection.Projection.
func (p *Projection) Topics() []string { return append([]string(nil), p.topics...) }

// Spec returns the projection's specification.
func (p *Projection) Spec() Spec { return p.spec }

// Statements returns the compiled statements of the handler for topic.
func (p *Projection) Statements(topic string) []Statement {
	if c, ok := p.handlers[topic]; ok {
		return append([]Statement(nil), c.stmts...)
	}
	return nil
}

// Handle implements projection.Projection: it runs the statements of e's type in tx, in order,
// with the event's fields bound to the named parameters. On the views/postgres store's
// transaction the statements are queued and sent with the rest of the batch in one round trip.
// Events of other types are ignored.
//
// A projection with batch SQL runs it over e alone; the Runner runs such a projection a batch at
// a time through Runnable instead.
func (p *Projection) Handle(ctx context.Context, tx pgx.Tx, e projection.Event) error {
	if p.batch != nil {
		return p.handleBatch(ctx, tx, []projection.Event{e})
	}
	c, ok := p.handlers[e.Type]
	if !ok {
		return nil
	}
	vals, err := c.plan.values(&e)
	if err != nil {
		return err
	}
	if q, ok := tx.(queuer); ok {
		// The views/postgres store pipelines queued statements: one round trip per batch.
		for i, s := range c.stmts {
			q.Queue(s.SQL, c.plan.args(i, vals)...)
		}
		return nil
	}
	if len(c.stmts) == 1 {
		s := c.stmts[0]
		if _, err := tx.Exec(ctx, s.SQL, c.plan.args(0, vals)...); err != nil {
			return stmtError(e, s, 1, err)
		}
		return nil
	}
	b := &pgx.Batch{}
	for i, s := range c.stmts {
		b.Queue(s.SQL, c.plan.args(i, vals)...)
	}
	br := tx.SendBatch(ctx, b)
	for i, s := range c.stmts {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return stmtError(e, s, i+1, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("%s: %w", describe(e), err)
	}
	return nil
}

// queuer is implemented by the views/postgres store's transaction, which sends queued
// statements together when the batch is flushed.
type queuer interface {
	Queue(sql string, args ...any)
}

func stmtError(e projection.Event, s Statement, n int, err error) error {
	return fmt.Errorf("%s: statement %d (line %d of the handler): %w", describe(e), n, s.Line, err)
}

// describe names an event in errors.
func describe(e projection.Event) string {
	return fmt.Sprintf("event %s (type %q, stream %q revision %d, position %s)", e.ID, e.Type, e.Stream, e.Revision, e.Position)
}

// Conn is what Check, Migrate and ResetView need of a PostgreSQL connection: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx all satisfy it.
type Conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Migrate applies the projection's schema in a transaction of its own, under an advisory lock
// so that replicas starting together do not race.
func (p *Projection) Migrate(ctx context.Context, db Conn) error {
	if strings.TrimSpace(p.spec.Schema) == "" {
		return nil
	}
	return inTx(ctx, db, func(tx pgx.Tx) error {
		if err := lockSchemas(ctx, tx); err != nil {
			return fmt.Errorf("projection %q: %w", p.spec.Name, err)
		}
		if _, err := tx.Exec(ctx, p.spec.Schema); err != nil {
			return fmt.Errorf("projection %q: schema: %s", p.spec.Name, pgMessage(err))
		}
		return nil
	})
}

// ResetView runs the projection's reset SQL in tx (the caller rewinds tracking in the same
// transaction).
func (p *Projection) ResetView(ctx context.Context, tx pgx.Tx) error {
	if strings.TrimSpace(p.spec.Reset) == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, p.spec.Reset); err != nil {
		return fmt.Errorf("projection %q: reset: %s", p.spec.Name, pgMessage(err))
	}
	return nil
}

func inTx(ctx context.Context, db Conn, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// lockSchemas takes, for the rest of tx, the advisory lock under which every projection's schema
// is applied or checked. It is one lock for all projections, since their schemas may touch the
// same tables, so replicas starting together run their DDL one at a time.
func lockSchemas(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('projector schema'))`); err != nil {
		return fmt.Errorf("schema lock: %w", err)
	}
	return nil
}
