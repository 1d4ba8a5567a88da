// Batch SQL: statements run once per batch over the relation events, which holds the batch's
// events. The events reach PostgreSQL as one array per column, bound as parameters, and every
// statement reads them through a common table expression prepended to it.

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
	for i := range stmts {
		stmts[i].SQL = withEvents(stmts[i].SQL)
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

// eventsCTE is the common table expression that defines events from the bound arrays: $k is
// the array of the k-th parameter of Params (jsonb columns travel as text and are cast).
var eventsCTE = func() string {
	var sel, arrays, names []string
	sel = append(sel, "u.seq")
	for i, p := range params {
		typ := p.Type
		if typ == "jsonb" {
			typ = "text"
			sel = append(sel, fmt.Sprintf("u.%s::jsonb AS %s", p.Name, p.Name))
		} else {
			sel = append(sel, "u."+p.Name)
		}
		arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, typ))
		names = append(names, p.Name)
	}
	return fmt.Sprintf("events AS (SELECT %s FROM unnest(%s) WITH ORDINALITY AS u(%s, seq))",
		strings.Join(sel, ", "), strings.Join(arrays, ", "), strings.Join(names, ", "))
}()

// withEvents rewrites a statement of batch SQL to read events from the bound arrays: the
// events CTE is prepended, or joined to the statement's own WITH list.
func withEvents(stmt string) string {
	rest, recursive, ok := leadingWith(stmt)
	switch {
	case ok && recursive:
		return "WITH RECURSIVE " + eventsCTE + ", " + rest
	case ok:
		return "WITH " + eventsCTE + ", " + rest
	}
	return "WITH " + eventsCTE + "\n" + stmt
}

// leadingWith reports whether stmt starts (after whitespace and comments) with the keyword
// WITH, optionally followed by RECURSIVE, and returns the text after them.
func leadingWith(stmt string) (rest string, recursive, ok bool) {
	rest, ok = keyword(stmt, "with")
	if !ok {
		return stmt, false, false
	}
	if r, rec := keyword(rest, "recursive"); rec {
		return r, true, true
	}
	return rest, false, true
}

// keyword reports whether s starts, after whitespace and comments, with the keyword kw (in any
// case) and returns the text after it.
func keyword(s, kw string) (string, bool) {
	i := skipSpace(s)
	if len(s)-i < len(kw) || !strings.EqualFold(s[i:i+len(kw)], kw) {
		return s, false
	}
	if j := i + len(kw); j < len(s) && isIdent(s[j]) {
		return s, false
	}
	return s[i+len(kw):], true
}

// skipSpace returns the index of the first character of s that is not whitespace or in a
// comment.
func skipSpace(s string) int {
	for i := 0; i < len(s); {
		switch {
		case isSpace(s[i]):
			i++
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return len(s)
			}
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			i = scanBlockComment(s, i)
		default:
			return i
		}
	}
	return len(s)
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
	b := &pgx.Batch{}
	for _, s := range p.batch {
		b.Queue(s.SQL, args...)
	}
	br := tx.SendBatch(ctx, b)
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
