// The columns of events a projection's batch SQL reads: only those travel to PostgreSQL and are
// loaded; the others stay NULL. PostgreSQL says which they are, once, at the first batch: the
// statements become the body of a function (which PostgreSQL parses and records the
// dependencies of, column by column), in a savepoint rolled back at once. Whenever that
// record could miss a read, every column is loaded.

package declarative

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// loadPlan is how a batch's events reach the temporary table events: the columns of params
// loaded (the others stay NULL), each bound as one array, and the statement that loads them.
type loadPlan struct {
	cols    []Param // in the order of params
	fields  []field
	oids    []uint32
	formats []int16
	insert  string // INSERT INTO pg_temp.events ... FROM unnest(...)
	// inline is the batch SQL's statements in the inline form (see inlineStatements); nil
	// when they read the temporary table.
	inline []string
}

// allColumns loads every column: the plan until PostgreSQL has said which columns are read,
// and whenever it cannot say.
var allColumns = newLoadPlan(params)

// newLoadPlan returns the plan that loads cols (in the order of params), and seq.
func newLoadPlan(cols []Param) *loadPlan {
	l := &loadPlan{cols: cols}
	names := []string{"seq"}
	sel := []string{"u.seq"}
	var arrays []string
	for i, c := range cols {
		l.fields = append(l.fields, fieldOf(c.Name))
		array, _ := arrayOID(c.Type)
		l.oids = append(l.oids, array)
		l.formats = append(l.formats, 1) // binary
		typ, value := c.Type, "u."+c.Name
		if typ == "jsonb" { // travels as text
			typ, value = "text", value+"::jsonb"
		}
		names = append(names, c.Name)
		sel = append(sel, value)
		arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, typ))
	}
	l.insert = fmt.Sprintf("INSERT INTO pg_temp.events (%s) SELECT %s FROM unnest(%s) WITH ORDINALITY AS u(%s, seq)",
		strings.Join(names, ", "), strings.Join(sel, ", "), strings.Join(arrays, ", "), strings.Join(names[1:], ", "))
	return l
}

// loads reports whether the plan loads field f.
func (l *loadPlan) loads(f field) bool {
	for _, g := range l.fields {
		if g == f {
			return true
		}
	}
	return false
}

// planFor returns the plan of the columns named in read: those of params among them, in the
// order of params, and event_type when there is none (unnest needs an array).
func planFor(read []string) *loadPlan {
	var cols []Param
	for _, p := range params {
		for _, name := range read {
			if name == p.Name {
				cols = append(cols, p)
				break
			}
		}
	}
	if len(cols) == len(params) {
		return allColumns
	}
	if len(cols) == 0 {
		cols = []Param{params[fieldIndex(eventType)]}
	}
	return newLoadPlan(cols)
}

// fieldIndex returns the index in params of the parameter of f.
func fieldIndex(f field) int {
	for i, p := range params {
		if fieldOf(p.Name) == f {
			return i
		}
	}
	panic(fmt.Sprintf("field %d has no parameter", f))
}

// probeFunction is the function the batch SQL becomes while PostgreSQL is asked what it reads.
const probeFunction = "pg_temp.projector_batch_columns"

// columnsRead asks PostgreSQL, in tx, which columns of events the statements read. It returns
// allColumns when PostgreSQL cannot tell for sure: the statements cannot be the body of a
// function (a statement other than SELECT, INSERT, UPDATE and DELETE, or PostgreSQL before
// 14), or something they run besides the statements themselves could read events unseen: a
// function, operator or type (other than an enum) that is not built in, a trigger, rule,
// default, constraint, policy or index of a relation they use that calls a function, or a
// whole-row reference. Batch SQL of one statement gets the inline form (see
// inlineStatements) if it prepares in it. Only a
// failure to reach PostgreSQL is an error. Nothing it does outlives it.
func columnsRead(ctx context.Context, tx pgx.Tx, stmts []Statement) (*loadPlan, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	defer func() { _ = sp.Rollback(ctx) }()
	if _, err := sp.Exec(ctx, eventsTable); err != nil {
		return nil, fmt.Errorf("create the temporary table events: %w", err)
	}
	body := make([]string, len(stmts))
	for i, s := range stmts {
		body[i] = s.SQL + "\n;" // on a line of its own: a statement may end in a comment
	}
	create := "CREATE FUNCTION " + probeFunction + "() RETURNS void LANGUAGE sql BEGIN ATOMIC\n" + strings.Join(body, "\n") + "\nEND"
	if _, err := sp.Exec(ctx, create); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return allColumns, nil
		}
		return nil, fmt.Errorf("ask which columns of events the batch SQL reads: %w", err)
	}
	var read []string
	var unsure bool
	if err := sp.QueryRow(ctx, dependenciesQuery).Scan(&read, &unsure); err != nil {
		return nil, fmt.Errorf("ask which columns of events the batch SQL reads: %w", err)
	}
	if unsure {
		return allColumns, nil
	}
	l := planFor(read)
	if len(stmts) > 1 {
		// Each statement would unnest the arrays again: for several, loading the table once
		// measured faster (BenchmarkTrainingSchool: 7.4 ms per batch against 12.0 inline).
		return l, nil
	}
	// Without the table, so that a statement naming it (pg_temp.events) does not prepare.
	if _, err := sp.Exec(ctx, "DROP FUNCTION "+probeFunction+"(); DROP TABLE pg_temp.events"); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return l, nil
		}
		return nil, fmt.Errorf("drop the temporary table events: %w", err)
	}
	inline := inlineStatements(stmts, l)
	for _, s := range inline {
		if _, err := sp.Conn().PgConn().Prepare(ctx, "", s, nil); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) { // such as a WITH events of the statement's own
				return l, nil
			}
			return nil, fmt.Errorf("prepare the batch SQL's statements in the inline form: %w", err)
		}
	}
	withInline := *l
	withInline.inline = inline
	return &withInline, nil
}

// dependenciesQuery returns the columns of pg_temp.events the probe function depends on, and
// whether anything else it depends on could read events without a dependency on record: a
// function, operator, type other than an enum, or anything else besides relations (built-in
// objects are not recorded); anything depending on a relation it uses (a trigger, rule, default, constraint,
// policy, index or view) that calls a function; or a whole-row reference in its body to
// events or to a record (which records no column; a Var's fields are printed in this order
// from PostgreSQL 14 on). ON CONFLICT's excluded row is a whole-row reference to its table.
const dependenciesQuery = `
WITH deps AS (
  SELECT refclassid, refobjid, refobjsubid FROM pg_depend
   WHERE classid = 'pg_proc'::regclass AND objid = '` + probeFunction + `'::regproc
), rels AS (
  SELECT DISTINCT refobjid AS rel FROM deps WHERE refclassid = 'pg_class'::regclass
)
SELECT coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = 'pg_temp.events'::regclass AND a.attnum IN
                        (SELECT refobjsubid FROM deps
                          WHERE refclassid = 'pg_class'::regclass AND refobjid = 'pg_temp.events'::regclass)), '{}'),
       EXISTS (SELECT 1 FROM deps WHERE refclassid NOT IN ('pg_class'::regclass, 'pg_namespace'::regclass)
                  AND NOT (refclassid = 'pg_type'::regclass AND (SELECT typtype = 'e' FROM pg_type WHERE oid = refobjid)))
    OR EXISTS (SELECT 1 FROM pg_depend o JOIN pg_depend f ON f.classid = o.classid AND f.objid = o.objid
                WHERE o.refclassid = 'pg_class'::regclass AND o.refobjid IN (SELECT rel FROM rels)
                  AND f.refclassid = 'pg_proc'::regclass)
    OR (SELECT prosqlbody::text FROM pg_proc WHERE oid = '` + probeFunction + `'::regproc)
       ~ (':varattno 0 :vartype (2249|' || (SELECT reltype FROM pg_class WHERE oid = 'pg_temp.events'::regclass) || ') ')`
