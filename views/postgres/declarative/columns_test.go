package declarative

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// PostgreSQL says which columns of events batch SQL reads; whenever something could read
// events without a dependency on record, every column is loaded.
func TestColumnsRead(t *testing.T) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pgtest.NewDatabase(t, "projector_columns_"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(ctx) })
	const schema = `
CREATE TABLE dogs (id uuid PRIMARY KEY, name text, registered_at timestamptz, tricks int NOT NULL DEFAULT 0);
CREATE TABLE dog_tricks (dog_id uuid, revision bigint, trick text, PRIMARY KEY (dog_id, revision));
CREATE TABLE counts (name text PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE audited (v text);
CREATE TYPE mood AS ENUM ('calm', 'wild');
CREATE TABLE moods (id text, mood mood);
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql AS 'SELECT upper(t)';
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := (SELECT metadata::text FROM events LIMIT 1); RETURN NEW; END$$;
CREATE TRIGGER audit BEFORE INSERT ON audited FOR EACH ROW EXECUTE FUNCTION audit();
CREATE TABLE defaulted (v text DEFAULT shout('x'));`
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	all := "seq stream_id event_type event_id revision commit_position prepare_position created content_type data metadata"
	for _, tc := range []struct {
		name, sql, want string
		inline          bool // the statements read a common table expression, not the table
	}{
		{"training school", `INSERT INTO dogs (id, name, registered_at)
  SELECT stream_id::uuid, data->>'name', created FROM events WHERE event_type = 'R'; -- a comment ends it
INSERT INTO dog_tricks SELECT stream_id::uuid, revision, data->>'trick' FROM events WHERE event_type = 'T';
UPDATE dogs SET tricks = dogs.tricks + t.n
  FROM (SELECT stream_id::uuid AS id, count(*) AS n FROM events GROUP BY stream_id) t WHERE dogs.id = t.id`,
			"seq stream_id event_type revision created data", false},
		{"no column: event_type stands in", "INSERT INTO counts SELECT 'all', count(*) FROM events ON CONFLICT (name) DO UPDATE SET n = counts.n + excluded.n",
			"seq event_type", true},
		{"a column through a WITH and an alias", "WITH x AS (SELECT e.metadata AS m FROM events e ORDER BY e.seq) INSERT INTO moods (id) SELECT m::text FROM x",
			"seq metadata", true},
		{"an enum cast", "INSERT INTO moods SELECT stream_id, (data->>'mood')::mood FROM events", "seq stream_id data", true},
		{"every column", "INSERT INTO moods (id) SELECT (SELECT count(*) FROM (SELECT * FROM events) e)::text", all, true},
		{"the table by its name", "INSERT INTO moods (id) SELECT stream_id FROM pg_temp.events", "seq stream_id", false},
		{"a whole-row reference", "INSERT INTO moods (id) SELECT to_jsonb(e)::text FROM events e", all, false},
		{"a whole-row reference to a record", "INSERT INTO moods (id) SELECT to_jsonb(x)::text FROM (SELECT e FROM events e) x", all, false},
		{"a whole-row reference to a subquery", "INSERT INTO moods (id) SELECT to_jsonb(x)::text FROM (SELECT stream_id, data FROM events) x", all, false},
		{"a function not built in", "INSERT INTO audited SELECT shout(stream_id) FROM events", all, false},
		{"a trigger", "INSERT INTO audited SELECT stream_id FROM events", all, false},
		{"a default calling a function", "INSERT INTO defaulted (v) SELECT stream_id FROM events", all, false},
		{"a WITH events of its own", "WITH events AS (SELECT 'x' AS stream_id) INSERT INTO moods (id) SELECT stream_id FROM events", "seq event_type", false},
		{"a statement a function cannot hold", "TRUNCATE audited; INSERT INTO dogs (id) SELECT stream_id::uuid FROM events", all, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := ParseBatch(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			l, err := columnsRead(ctx, tx, stmts)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{"seq"}
			for _, col := range l.cols {
				got = append(got, col.Name)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("loads %q, want %q", strings.Join(got, " "), tc.want)
			}
			if (l.inline != nil) != tc.inline {
				t.Errorf("inline form: %v, want %v", l.inline != nil, tc.inline)
			}
			var left bool // nothing outlives the question
			if err := tx.QueryRow(ctx, "SELECT to_regproc($1) IS NOT NULL", probeFunction).Scan(&left); err != nil || left {
				t.Errorf("the probe function is left behind (%v, %v)", left, err)
			}
		})
	}
}

func TestInlineStatementsMergeTheStatementsOwnWith(t *testing.T) {
	l := planFor([]string{"stream_id"})
	cte := "events AS (" + l.selectEvents() + ")"
	for _, tc := range []struct{ sql, want string }{
		{"INSERT INTO t SELECT stream_id FROM events", "WITH " + cte + "\nINSERT INTO t SELECT stream_id FROM events"},
		{"-- c\n/* d /* nested */ */ with x AS (SELECT 1) SELECT 1", "-- c\n/* d /* nested */ */ WITH " + cte + ",\n x AS (SELECT 1) SELECT 1"},
		{"WITH\n  RECURSIVE n(i) AS (SELECT 1) SELECT 1", "WITH RECURSIVE " + cte + ",\n n(i) AS (SELECT 1) SELECT 1"},
		{"WITHIN SELECT", "WITH " + cte + "\nWITHIN SELECT"},
		{"with_x AS (SELECT 1)", "WITH " + cte + "\nwith_x AS (SELECT 1)"},
	} {
		if got := inlineStatements([]Statement{{SQL: tc.sql}}, l)[0]; got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.sql, got, tc.want)
		}
	}
}
