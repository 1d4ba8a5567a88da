package declarative_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

// batchSpec keeps the last name each dog was given (last write wins, in log order) and the
// order in which the batch SQL saw the events.
var batchSpec = declarative.Spec{
	Name: "names",
	Schema: `CREATE TABLE IF NOT EXISTS names (id text PRIMARY KEY, name text NOT NULL, renames int NOT NULL);
CREATE TABLE IF NOT EXISTS seen (batch_order text);`,
	Reset:  "TRUNCATE names, seen;",
	Topics: []string{"Named"},
	Batch: `-- the last name of each dog in the batch wins
INSERT INTO names (id, name, renames)
  SELECT DISTINCT ON (stream_id) stream_id, data->>'name', 0 FROM events ORDER BY stream_id, seq DESC
ON CONFLICT (id) DO UPDATE SET name = excluded.name, renames = names.renames + 1;
WITH ordered AS (SELECT string_agg(data->>'name', ',' ORDER BY seq) AS o FROM events)
INSERT INTO seen SELECT o FROM ordered;
/* a recursive statement of its own */ WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < (SELECT count(*) FROM events))
UPDATE names SET renames = renames + 0 WHERE id IN (SELECT stream_id FROM events JOIN n ON n.i = events.seq);`,
}

func named(stream, name string, pos uint64) projection.Event {
	e := event("Named", 0, pos, fmt.Sprintf(`{"name":%q}`, name))
	e.Stream = stream
	return e
}

func applyBatch(t *testing.T, c *pgx.Conn, p *declarative.Projection, evs ...projection.Event) error {
	t.Helper()
	ctx := context.Background()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	bp, ok := p.Runnable().(projection.BatchProjection[pgx.Tx])
	if !ok {
		t.Fatalf("Runnable of a batch projection is a %T, not a BatchProjection", p.Runnable())
	}
	if err := bp.HandleBatch(ctx, tx, evs); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func TestBatchSQLSeesTheBatchInLogOrder(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, err := declarative.New(batchSpec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	// A name with quotes and a semicolon reaches PostgreSQL as data, not SQL.
	evil := "Rex'); DROP TABLE names; --"
	err = applyBatch(t, c, p, named("a", "Fido", 100), named("b", "Rex", 200), named("a", "Bello", 300),
		event("Other", 0, 350, "not JSON, and not one of the topics"), named("b", evil, 400), named("a", "Max", 500))
	if err != nil {
		t.Fatal(err)
	}
	if err := applyBatch(t, c, p, named("a", "Lassie", 600)); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "SELECT id || '=' || name || '/' || renames FROM names ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=Lassie/1", "b=" + evil + "/0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("names = %q, want %q", got, want)
	}
	rows, _ = c.Query(ctx, "SELECT batch_order FROM seen ORDER BY length(batch_order) DESC")
	seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Fido,Rex,Bello," + evil + ",Max", "Lassie"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("the batch SQL saw %q, want %q", seen, want)
	}
}

func TestBatchSQLRejectsAnEventWhoseDataIsNotJSONNamingIt(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, _ := declarative.New(batchSpec)
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	bad := named("b", "x", 200)
	bad.Data = []byte(`{"name": "Rex"`)
	err := applyBatch(t, c, p, named("a", "Fido", 100), bad)
	if err == nil || !strings.Contains(err.Error(), bad.ID) || !strings.Contains(err.Error(), "data is not JSON") {
		t.Fatalf("err = %v, want a data-is-not-JSON error naming event %s", err, bad.ID)
	}
	// Metadata that is not JSON is no fault of the event's for batch SQL that does not read
	// it (as for a handler that does not use @metadata), and one for batch SQL that does.
	bad.Data, bad.Metadata = []byte(`{"name": "Rex"}`), []byte{0xff}
	if err := applyBatch(t, c, p, bad); err != nil {
		t.Fatalf("batch SQL that reads no metadata: %v", err)
	}
	s := batchSpec
	s.Batch += ";\nINSERT INTO seen SELECT metadata::text FROM events"
	reads, err := declarative.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyBatch(t, c, reads, bad); err == nil || !strings.Contains(err.Error(), "metadata is not JSON") {
		t.Fatalf("err = %v, want a metadata-is-not-JSON error", err)
	}
}

func TestBatchSQLReportsTheFailingStatement(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	s := batchSpec
	s.Batch = "INSERT INTO names SELECT stream_id, data->>'name', 0 FROM events;\n\nINSERT INTO names SELECT stream_id, data->>'name', 0 FROM events;"
	p, err := declarative.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	err = applyBatch(t, c, p, named("a", "Fido", 100))
	if err == nil || !strings.Contains(err.Error(), "statement 2 (line 3 of the batch SQL)") || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckReportsBatchStatementsPostgreSQLCannotPrepare(t *testing.T) {
	c := testDB(t)
	s := batchSpec
	s.Batch = "INSERT INTO names (id, name) SELECT stream_id, nmae FROM events;\nUPDATE names SET renames = 1 FROM events WHERE events.revison = 0;"
	p, err := declarative.New(s)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Check(context.Background(), c)
	var ces []*declarative.CheckError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *declarative.CheckError
		if errors.As(e, &ce) {
			ces = append(ces, ce)
		}
	}
	if len(ces) != 2 {
		t.Fatalf("got %d check errors, want 2: %v", len(ces), err)
	}
	if want := `batch: statement 1 (line 1 of the SQL): column "nmae" does not exist`; !ces[0].Batch || !strings.HasPrefix(ces[0].Error(), want) {
		t.Errorf("first = %v, want %s", ces[0], want)
	}
	if want := `batch: statement 2 (line 2 of the SQL): column events.revison does not exist`; ces[1].Line != 2 || !strings.HasPrefix(ces[1].Error(), want) {
		t.Errorf("second = %v, want %s", ces[1], want)
	}
}

func TestNewRejectsBadBatchSpecs(t *testing.T) {
	for _, tc := range []struct {
		spec declarative.Spec
		want string
	}{
		{declarative.Spec{Name: "x", Topics: []string{"A"}, Batch: "SELECT 1", Handlers: []declarative.Handler{{Topic: "A", SQL: "SELECT 1"}}},
			`declarative projection "x": both handlers and batch SQL; give one of them`},
		{declarative.Spec{Name: "x", Batch: "SELECT 1"}, `declarative projection "x": batch SQL without topics`},
		{declarative.Spec{Name: "x", Topics: []string{"A"}}, `declarative projection "x": topics without batch SQL`},
		{declarative.Spec{Name: "x", Topics: []string{"A", "A"}, Batch: "SELECT 1"}, `batch: topic "A" listed twice`},
		{declarative.Spec{Name: "x", Topics: []string{"A"}, Batch: "SELECT 1;\nSELECT @data"},
			"batch: line 2 of the SQL: @data: batch SQL takes no parameters; read the batch's events from the events relation instead (one row per event, with the columns seq, stream_id, event_type, event_id, revision, commit_position, prepare_position, created, content_type, data, metadata)"},
		{declarative.Spec{Name: "x", Topics: []string{"A"}, Batch: "SELECT $12"}, "batch: line 1 of the SQL: $12: batch SQL takes no parameters"},
	} {
		_, err := declarative.New(tc.spec)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %s", tc.spec, err, tc.want)
		}
	}
	// In batch SQL an operator ending in @ before a name is that operator and a column.
	if _, err := declarative.New(declarative.Spec{Name: "x", Topics: []string{"A"}, Batch: "SELECT 1 FROM events WHERE metadata <@data"}); err != nil {
		t.Errorf("<@data in batch SQL: %v", err)
	}
}

// The batch's events shadow a table called events; Check refuses a search_path in which that
// table would come first.
func TestBatchEventsShadowATableOfThatName(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	s := declarative.Spec{Name: "n", Schema: "CREATE TABLE IF NOT EXISTS n (id text);", Topics: []string{"Named"},
		Batch: "INSERT INTO n SELECT stream_id FROM events"}
	p, err := declarative.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE events (stream_id text); INSERT INTO events VALUES ('from the table')"); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := applyBatch(t, c, p, named("from the batch", "Fido", 100)); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c.QueryRow(ctx, "SELECT string_agg(id, ',') FROM n").Scan(&got); err != nil || got != "from the batch" {
		t.Errorf("the batch SQL read %q (%v), want the batch's event", got, err)
	}
	if _, err := c.Exec(ctx, "SET search_path = public, pg_temp"); err != nil {
		t.Fatal(err)
	}
	err = p.Check(ctx, c)
	var ce *declarative.CheckError
	if !errors.As(err, &ce) || !ce.Batch || !strings.Contains(err.Error(), "the name events reaches the relation events, not the batch's events: put pg_temp first in the search_path") {
		t.Errorf("Check with pg_temp last = %v", err)
	}
}

// Batch SQL of one statement reads the events from a common table expression over the bound
// arrays instead of the temporary table: the same rows, in log order by seq, shadowing a table
// events, merged into the statement's own WITH.
func TestOneStatementOfBatchSQLSeesTheBatchInLogOrder(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	if _, err := c.Exec(ctx, "CREATE TABLE events (stream_id text, data jsonb, seq bigint)"); err != nil {
		t.Fatal(err)
	}
	s := batchSpec
	s.Batch = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2)
INSERT INTO seen SELECT string_agg(data->>'name' || '@' || stream_id || '#' || seq, ',' ORDER BY seq) || '/' || (SELECT count(*) FROM n) FROM events`
	p, err := declarative.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	evil := "Rex'); DROP TABLE seen; --"
	err = applyBatch(t, c, p, named("a", "Fido", 100), event("Other", 0, 150, "not JSON, and not one of the topics"),
		named("b", evil, 200), named("a", "Max", 300))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c.QueryRow(ctx, "SELECT batch_order FROM seen").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "Fido@a#1," + evil + "@b#2,Max@a#3/2"; got != want {
		t.Errorf("the batch SQL saw %q, want %q", got, want)
	}
}
