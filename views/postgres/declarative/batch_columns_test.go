package declarative_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

const copiedColumns = `stream_id text, event_type text, event_id text, revision bigint, commit_position bigint,
prepare_position bigint, created timestamptz, content_type text, data jsonb, metadata jsonb`

// The events relation of batch SQL holds every field of every event exactly as a handler's
// named parameters bind it: the same events copied through both land as the same rows, and
// seq numbers them in log order.
func TestBatchEventsHoldTheFieldsAsHandlerParametersBindThem(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	batch, err := declarative.New(declarative.Spec{Name: "copy_batch", Topics: []string{"Copied"},
		Schema: "CREATE TABLE IF NOT EXISTS by_batch (seq bigint, " + copiedColumns + ");",
		Batch:  "INSERT INTO by_batch SELECT * FROM events"})
	if err != nil {
		t.Fatal(err)
	}
	perEvent, err := declarative.New(declarative.Spec{Name: "copy_handler",
		Schema: "CREATE TABLE IF NOT EXISTS by_handler (n serial, " + copiedColumns + ");",
		Handlers: []declarative.Handler{{Topic: "Copied", SQL: `INSERT INTO by_handler (stream_id, event_type, event_id, revision,
commit_position, prepare_position, created, content_type, data, metadata) VALUES (@stream_id, @event_type, @event_id,
@revision, @commit_position, @prepare_position, @created, @content_type, @data, @metadata)`}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*declarative.Projection{batch, perEvent} {
		if err := p.Check(ctx, c); err != nil {
			t.Fatalf("Check %s: %v", p.Name(), err)
		}
		if err := p.Migrate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("UTC+1", 3600)
	}
	evs := []projection.Event{
		{ID: "e1", Type: "Copied", Stream: `Fidø "🐕" ; DROP`, Revision: 0, Position: projection.Position{Commit: 1, Prepare: 1},
			Created: time.Date(2026, 1, 2, 3, 4, 5, 123456789, paris), ContentType: "application/json",
			Data: []byte(`{"name": "Rex", "n": [1, 2.5, null]}`), Metadata: []byte(" {\"k\":\"v\"}\n")},
		{ID: "e2", Type: "Other", Stream: "x", Data: []byte("not JSON and not a topic")},
		{ID: "e3", Type: "Copied", Stream: "", Revision: tracking.MaxStorablePosition,
			Position: projection.Position{Commit: tracking.MaxStorablePosition, Prepare: tracking.MaxStorablePosition - 1},
			Data:     []byte(" \t"), Metadata: nil},
		{ID: "e4", Type: "Copied", Stream: "s", Revision: 7, Position: projection.Position{Commit: 900, Prepare: 800},
			Created: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), Data: []byte(`"text"`), Metadata: []byte(`[]`)},
	}
	if err := applyBatch(t, c, batch, evs...); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, c, perEvent, evs...); err != nil {
		t.Fatal(err)
	}
	rows := func(sql string) []string {
		t.Helper()
		r, err := c.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	const fields = `stream_id, event_type, event_id, revision, commit_position, prepare_position, created, content_type, data, metadata`
	got := rows("SELECT seq || ' ' || row(" + fields + ")::text FROM by_batch ORDER BY seq")
	want := rows("SELECT n || ' ' || row(" + fields + ")::text FROM by_handler ORDER BY n")
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 3 {
		t.Errorf("events relation:\n%q\nwant (as the handler's parameters bind them):\n%q", got, want)
	}
	nulls := rows("SELECT coalesce(data::text, 'NULL') || ' ' || coalesce(metadata::text, 'NULL') FROM by_batch ORDER BY seq")
	if want := []string{`{"n": [1, 2.5, null], "name": "Rex"} {"k": "v"}`, "NULL NULL", `"text" []`}; fmt.Sprint(nulls) != fmt.Sprint(want) {
		t.Errorf("data and metadata = %q, want %q", nulls, want)
	}
}

// Only the columns of events the batch SQL reads are loaded, but a trigger of a table it
// writes may read any column: the events relation then holds every column.
func TestBatchEventsHoldEveryColumnForATriggerThatReadsThem(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, err := declarative.New(declarative.Spec{Name: "audited", Topics: []string{"Copied"},
		Schema: `CREATE TABLE IF NOT EXISTS audited (id text, meta text);
CREATE OR REPLACE FUNCTION audit_meta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.meta := (SELECT metadata->>'k' FROM events WHERE stream_id = NEW.id);
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER audit_meta BEFORE INSERT ON audited FOR EACH ROW EXECUTE FUNCTION audit_meta();`,
		Batch: "INSERT INTO audited (id) SELECT stream_id FROM events"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	evs := []projection.Event{
		{ID: "e1", Type: "Copied", Stream: "a", Position: projection.Position{Commit: 1, Prepare: 1}, Data: []byte(`{}`), Metadata: []byte(`{"k": "one"}`)},
		{ID: "e2", Type: "Copied", Stream: "b", Position: projection.Position{Commit: 2, Prepare: 2}, Data: []byte(`{}`), Metadata: []byte(`{"k": "two"}`)},
	}
	for _, e := range evs {
		if err := applyBatch(t, c, p, e); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Query(ctx, "SELECT id || '=' || coalesce(meta, 'NULL') FROM audited ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=one", "b=two"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audited = %q, want %q (the trigger read the metadata of the events)", got, want)
	}
}
