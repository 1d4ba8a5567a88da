// Batch SQL: statements run once per batch over the relation events, which holds the batch's
// events. The events reach PostgreSQL as one array per column (see eventArrays), bound as
// parameters, loaded into the session's temporary table events (emptied at every commit), which
// the statements read, all in one round trip.

package declarative

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/projector-dev/projector/projection"
)

// BatchError is an error in the batch SQL of a projection, or in its topics.
type BatchError struct {
	Err error
}

// Error implements error.
func (e *BatchError) Error() string { return fmt.Sprintf("batch: %v", e.Err) }

// Unwrap returns the underlying error.
func (e *BatchError) Unwrap() error { return e.Err }

// newBatch compiles a spec with batch SQL: Topics and Batch, and no Handlers.
func newBatch(spec Spec) (*Projection, error) {
	switch {
	case len(spec.Handlers) > 0:
		return nil, fmt.Errorf("declarative projection %q: both handlers and batch SQL; give one of them", spec.Name)
	case strings.TrimSpace(spec.Batch) == "":
		return nil, fmt.Errorf("declarative projection %q: topics without batch SQL", spec.Name)
	case len(spec.Topics) == 0:
		return nil, fmt.Errorf("declarative projection %q: batch SQL without topics", spec.Name)
	}
	p := &Projection{spec: spec, topicSet: make(map[string]bool, len(spec.Topics))}
	for i, t := range spec.Topics {
		switch {
		case t == "":
			return nil, &BatchError{Err: fmt.Errorf("topic %d is empty", i+1)}
		case p.topicSet[t]:
			return nil, &BatchError{Err: fmt.Errorf("topic %q listed twice", t)}
		}
		p.topicSet[t] = true
		p.topics = append(p.topics, t)
	}
	stmts, err := ParseBatch(spec.Batch)
	if err != nil {
		return nil, &BatchError{Err: err}
	}
	p.batch = stmts
	return p, nil
}

// EventColumns returns the columns of the events relation of batch SQL, in order: seq, the
// event's 1-based place in the batch in log order, then one column per named parameter of
// handler SQL (see Params), of the same name and type.
func EventColumns() []Param {
	return append([]Param{{"seq", "bigint", "the event's place in the batch, 1 to n in log order"}}, params...)
}

func eventColumns() string {
	cols := EventColumns()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// eventsTable creates, if it is missing, the temporary table events of the session: the batch
// is loaded into it, and it is emptied at every commit. Being in pg_temp, which PostgreSQL
// searches first unless search_path names it later, it shadows any other relation events.
var eventsTable = func() string {
	cols := EventColumns()
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = c.Name + " " + c.Type
	}
	return fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS events (%s) ON COMMIT DELETE ROWS", strings.Join(defs, ", "))
}()

// emptyEvents empties pg_temp.events before a batch is loaded, for a second batch in the same
// transaction.
const emptyEvents = "DELETE FROM pg_temp.events"

// createEvents creates pg_temp.events in tx if it is missing.
func createEvents(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, eventsTable); err != nil {
		return fmt.Errorf("create the temporary table events: %w", err)
	}
	return nil
}

// loadSteps is the number of statements sent before the batch SQL's: create the table if it
// is missing, empty it, load it.
const loadSteps = 3

// handleBatch runs the batch SQL once over the events of events whose type is one of the
// projection's topics, in tx. It does nothing when there are none.
//
// Everything goes in one round trip, each statement parsed when its turn comes (so the
// statements after the first see the table it creates): the temporary table events is
// created if it is missing and emptied, loaded from the bound arrays (see eventArrays), and
// the batch SQL's statements run in order. Only the columns the batch SQL reads are loaded:
// PostgreSQL says which at the first batch (see columnsRead), in one more round trip; when
// nothing but the statements reads events, each statement reads them from a common table
// expression over the arrays instead of the table (see inlineStatements).
func (p *Projection) handleBatch(ctx context.Context, tx pgx.Tx, events []projection.Event) error {
	mine := p.ofTopics(events)
	if len(mine) == 0 {
		return nil
	}
	if f, ok := tx.(projection.Flusher); ok {
		// Statements the store queued before this batch run first.
		if err := f.Flush(ctx); err != nil {
			return fmt.Errorf("%s: %w", describeBatch(mine), err)
		}
	}
	load := p.load.Load()
	if load == nil {
		var err error
		if load, err = columnsRead(ctx, tx, p.batch); err != nil {
			return fmt.Errorf("%s: %w", describeBatch(mine), err)
		}
		p.load.Store(load)
	}
	arrays := arraysPool.Get().(*eventArrays)
	defer arraysPool.Put(arrays)
	if err := arrays.encode(mine, load); err != nil {
		return err
	}
	b := &pgconn.Batch{}
	// The store's transaction may not have sent its BEGIN yet: it goes first, in this round trip.
	var begin []string
	if tb, ok := tx.(beginTaker); ok {
		begin = tb.TakeBegin()
	}
	for _, s := range begin {
		b.ExecParams(s, nil, nil, nil, nil)
	}
	steps := len(begin) // statements before the batch SQL's
	if load.inline != nil {
		for _, s := range load.inline {
			b.ExecParams(s, arrays.values, load.oids, load.formats, nil)
		}
	} else {
		steps += loadSteps
		b.ExecParams(eventsTable, nil, nil, nil, nil)
		b.ExecParams(emptyEvents, nil, nil, nil, nil)
		b.ExecParams(load.insert, arrays.values, load.oids, load.formats, nil)
		for _, s := range p.batch {
			b.ExecParams(s.SQL, nil, nil, nil, nil)
		}
	}
	results := tx.Conn().PgConn().ExecBatch(ctx, b)
	done := 0
	var err error
	for results.NextResult() {
		if _, err = results.ResultReader().Close(); err != nil {
			break
		}
		done++
	}
	if cerr := results.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return nil
	case done < len(begin):
		return fmt.Errorf("%s: begin the transaction (%s): %w", describeBatch(mine), begin[done], err)
	case done == len(begin) && load.inline == nil:
		return fmt.Errorf("%s: create the temporary table events: %w", describeBatch(mine), err)
	case done < steps:
		return fmt.Errorf("%s: load the temporary table events (step %d): %w", describeBatch(mine), done-len(begin), err)
	case done-steps < len(p.batch):
		s := p.batch[done-steps]
		return fmt.Errorf("%s: statement %d (line %d of the batch SQL): %w", describeBatch(mine), done-steps+1, s.Line, err)
	}
	return fmt.Errorf("%s: %w", describeBatch(mine), err)
}

// ofTopics returns the events of events whose type is one of the projection's topics: events
// itself when they all are, a copy otherwise.
func (p *Projection) ofTopics(events []projection.Event) []projection.Event {
	for i, e := range events {
		if p.topicSet[e.Type] {
			continue
		}
		mine := append(make([]projection.Event, 0, len(events)-1), events[:i]...)
		for _, e := range events[i+1:] {
			if p.topicSet[e.Type] {
				mine = append(mine, e)
			}
		}
		return mine
	}
	return events
}

// describeBatch names a batch of events in errors: the event when it is one.
func describeBatch(events []projection.Event) string {
	if len(events) == 1 {
		return describe(events[0])
	}
	return fmt.Sprintf("batch of %d events at %s to %s", len(events), events[0].Position, events[len(events)-1].Position)
}

// beginTaker is a transaction that may not have sent its BEGIN yet (the views/postgres store's):
// TakeBegin returns the statements that begin it, for the caller to send first.
type beginTaker interface{ TakeBegin() []string }

// batchProjection is a declarative projection with batch SQL as the Runner runs it: a
// projection.BatchProjection.
type batchProjection struct{ *Projection }

// HandleBatch implements projection.BatchProjection.
func (b batchProjection) HandleBatch(ctx context.Context, tx pgx.Tx, events []projection.Event) error {
	return b.handleBatch(ctx, tx, events)
}

// Runnable returns p as the Runner should run it: a projection.BatchProjection, which the
// Runner calls once per batch, when p has batch SQL; p itself otherwise.
func (p *Projection) Runnable() projection.Projection[pgx.Tx] {
	if p.batch != nil {
		return batchProjection{p}
	}
	return p
}

// checkEvents creates pg_temp.events in tx, and fails with a *CheckError when another
// relation events comes before it in the search_path (batch SQL would read that one).
func checkEvents(ctx context.Context, tx pgx.Tx) error {
	if err := createEvents(ctx, tx); err != nil {
		if isConnErr(err) {
			return err
		}
		return &CheckError{Batch: true, Err: err}
	}
	var shadowed string
	err := tx.QueryRow(ctx, `SELECT coalesce((SELECT to_regclass('events')::text WHERE to_regclass('events') <> to_regclass('pg_temp.events')), '')`).Scan(&shadowed)
	switch {
	case err != nil:
		return fmt.Errorf("look up the relation events: %w", err)
	case shadowed != "":
		return &CheckError{Batch: true, Err: fmt.Errorf("the name events reaches the relation %s, not the batch's events: put pg_temp first in the search_path (or leave it out, which puts it first)", shadowed)}
	}
	return nil
}
