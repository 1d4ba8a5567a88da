// Batch SQL: statements run once per batch over the relation events, which holds the batch's
// events. The events reach PostgreSQL as one array per column, bound as parameters, loaded into
// the session's temporary table events (emptied at every commit), which the statements read.

package declarative

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
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

// loadEvents fills pg_temp.events from the bound arrays: $k is the array of the k-th parameter
// of Params (jsonb columns travel as text and are cast). It empties the table first, for a
// second batch in the same transaction.
var loadEvents = func() []string {
	var sel, arrays, names []string
	sel = append(sel, "u.seq")
	for i, p := range params {
		typ := p.Type
		if typ == "jsonb" {
			typ = "text"
			sel = append(sel, "u."+p.Name+"::jsonb")
		} else {
			sel = append(sel, "u."+p.Name)
		}
		arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, typ))
		names = append(names, p.Name)
	}
	return []string{"DELETE FROM pg_temp.events", fmt.Sprintf("INSERT INTO pg_temp.events SELECT %s FROM unnest(%s) WITH ORDINALITY AS u(%s, seq)",
		strings.Join(sel, ", "), strings.Join(arrays, ", "), strings.Join(names, ", "))}
}()

// createEvents creates pg_temp.events in tx if it is missing, and checks that it is the
// relation the name events reaches.
func createEvents(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, eventsTable); err != nil {
		return fmt.Errorf("create the temporary table events: %w", err)
	}
	return nil
}

// batchArgs returns the arrays bound to the events CTE for events, in the order of Params. An
// event whose data or metadata is not JSON, or whose positions do not fit a bigint, is an
// error naming it.
func batchArgs(events []projection.Event) ([]any, error) {
	n := len(events)
	var (
		streams, types, ids, contentTypes = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		revisions, commits, prepares      = make([]int64, n), make([]int64, n), make([]int64, n)
		created                           = make([]time.Time, n)
		data, metadata                    = make([]*string, n), make([]*string, n)
	)
	for i, e := range events {
		for _, v := range []uint64{e.Revision, e.Position.Commit, e.Position.Prepare} {
			if v > tracking.MaxStorablePosition {
				return nil, fmt.Errorf("%s: value %d does not fit a bigint column", describe(e), v)
			}
		}
		var err error
		if data[i], err = jsonText(e.Data); err != nil {
			return nil, fmt.Errorf("%s: data is not JSON (the events relation has it as jsonb): %w", describe(e), err)
		}
		if metadata[i], err = jsonText(e.Metadata); err != nil {
			return nil, fmt.Errorf("%s: metadata is not JSON (the events relation has it as jsonb): %w", describe(e), err)
		}
		streams[i], types[i], ids[i], contentTypes[i] = e.Stream, e.Type, e.ID, e.ContentType
		revisions[i], commits[i], prepares[i] = int64(e.Revision), int64(e.Position.Commit), int64(e.Position.Prepare)
		created[i] = e.Created
	}
	byName := map[string]any{
		"stream_id": streams, "event_type": types, "event_id": ids, "revision": revisions,
		"commit_position": commits, "prepare_position": prepares, "created": created,
		"content_type": contentTypes, "data": data, "metadata": metadata,
	}
	args := make([]any, len(params))
	for i, p := range params {
		args[i] = byName[p.Name]
	}
	return args, nil
}

// jsonText is jsonValue as a nullable text.
func jsonText(b []byte) (*string, error) {
	v, err := jsonValue(b)
	if err != nil || v == nil {
		return nil, err
	}
	s := v.(string)
	return &s, nil
}

// handleBatch runs the batch SQL once over the events of events whose type is one of the
// projection's topics, in tx, statement by statement in one round trip. It does nothing when
// there are none.
func (p *Projection) handleBatch(ctx context.Context, tx pgx.Tx, events []projection.Event) error {
	mine := events[:0:0]
	for _, e := range events {
		if p.topicSet[e.Type] {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	args, err := batchArgs(mine)
	if err != nil {
		return err
	}
	// The table must exist before the statements that read it are prepared: a round trip of
	// its own, then the load and the statements in one.
	if err := createEvents(ctx, tx); err != nil {
		return fmt.Errorf("%s: %w", describeBatch(mine), err)
	}
	b := &pgx.Batch{}
	b.Queue(loadEvents[0])
	b.Queue(loadEvents[1], args...)
	for _, s := range p.batch {
		b.Queue(s.SQL)
	}
	br := tx.SendBatch(ctx, b)
	for i := range loadEvents {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: load the temporary table events (step %d): %w", describeBatch(mine), i+1, err)
		}
	}
	for i, s := range p.batch {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: statement %d (line %d of the batch SQL): %w", describeBatch(mine), i+1, s.Line, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("%s: %w", describeBatch(mine), err)
	}
	return nil
}

// describeBatch names a batch of events in errors: the event when it is one.
func describeBatch(events []projection.Event) string {
	if len(events) == 1 {
		return describe(events[0])
	}
	return fmt.Sprintf("batch of %d events at %s to %s", len(events), events[0].Position, events[len(events)-1].Position)
}

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
