package declarative_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/declarative"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// testDB connects to a database of its own for t, dropped when t ends.
func testDB(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pgtest.NewDatabase(t, "projector_decl_"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(ctx) })
	return c
}

var spec = declarative.Spec{
	Name: "dogs",
	Schema: `CREATE TABLE IF NOT EXISTS dogs (id uuid PRIMARY KEY, name text NOT NULL, created timestamptz, tricks int NOT NULL DEFAULT 0, meta jsonb);
CREATE TABLE IF NOT EXISTS tricks (dog uuid, revision bigint, trick text, position bigint, PRIMARY KEY (dog, revision));`,
	Reset: "TRUNCATE dogs, tricks;",
	Handlers: []declarative.Handler{
		{Topic: "__main__:Dog.Registered", SQL: "INSERT INTO dogs (id, name, created, meta) VALUES (@stream_id::uuid, @data->>'name', @created, @metadata)"},
		{Topic: "__main__:Dog.TrickAdded", SQL: `INSERT INTO tricks VALUES (@stream_id::uuid, @revision, @data->>'trick', @commit_position);
UPDATE dogs SET tricks = tricks + 1 WHERE id = @stream_id::uuid;`},
	},
}

const fido = "6ee3ee5f-8a4a-5b8c-9b8e-7a4ad2b33f0c"

func event(typ string, rev uint64, pos uint64, data string) projection.Event {
	return projection.Event{
		ID: "0b6a5c3e-0000-4000-8000-00000000000" + string(rune('0'+rev)), Type: typ, Stream: fido, Revision: rev,
		Position: projection.Position{Commit: pos, Prepare: pos}, Data: []byte(data),
		ContentType: "application/octet-stream", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func apply(t *testing.T, c *pgx.Conn, p *declarative.Projection, evs ...projection.Event) error {
	t.Helper()
	ctx := context.Background()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, e := range evs {
		if err := p.Handle(ctx, tx, e); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func TestHandleBindsEventFields(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, err := declarative.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check before Migrate: %v", err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	err = apply(t, c, p,
		event("__main__:Dog.Registered", 0, 100, `{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-02T03:04:05+00:00"},"originator_topic":"__main__:Dog","name":"Fido'); DROP TABLE dogs; --"}`),
		event("__main__:Dog.TrickAdded", 1, 200, `{"trick":"roll over"}`),
		event("__main__:Dog.TrickAdded", 2, 300, `{"trick":"play dead"}`),
		event("__main__:Other", 3, 400, `not json, ignored`),
	)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var n int
	var created time.Time
	var meta *string
	if err := c.QueryRow(ctx, "SELECT name, tricks, created, meta::text FROM dogs WHERE id = $1", fido).Scan(&name, &n, &created, &meta); err != nil {
		t.Fatal(err)
	}
	if name != "Fido'); DROP TABLE dogs; --" || n != 2 || !created.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || meta != nil {
		t.Errorf("dog row = %q, %d, %v, %v", name, n, created, meta)
	}
	var tricks string
	if err := c.QueryRow(ctx, "SELECT string_agg(trick || '@' || revision || '/' || position, ',' ORDER BY revision) FROM tricks").Scan(&tricks); err != nil {
		t.Fatal(err)
	}
	if tricks != "roll over@1/200,play dead@2/300" {
		t.Errorf("tricks = %s", tricks)
	}

	// Reset empties the view.
	tx, _ := c.Begin(ctx)
	if err := p.ResetView(ctx, tx); err != nil {
		t.Fatal(err)
	}
	_ = tx.Commit(ctx)
	if err := c.QueryRow(ctx, "SELECT count(*) FROM dogs").Scan(&n); err != nil || n != 0 {
		t.Errorf("after reset: %d dogs, %v", n, err)
	}
}

func TestHandleRejectsNonJSONDataNamingTheEvent(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, _ := declarative.New(spec)
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	e := event("__main__:Dog.Registered", 0, 100, `{"name": "Fido"`)
	err := apply(t, c, p, e)
	if err == nil || !strings.Contains(err.Error(), e.ID) || !strings.Contains(err.Error(), "data is not JSON") || !strings.Contains(err.Error(), "__main__:Dog.Registered") {
		t.Fatalf("err = %v, want a data-is-not-JSON error naming event %s", err, e.ID)
	}
}

func TestHandleReportsTheFailingStatement(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	p, _ := declarative.New(spec)
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	// The same trick revision twice violates the primary key in the handler's first statement.
	e := event("__main__:Dog.TrickAdded", 1, 200, `{"trick":"sit"}`)
	err := apply(t, c, p, e, e)
	if err == nil || !strings.Contains(err.Error(), "statement 1 (line 1") || !strings.Contains(err.Error(), e.ID) {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckReportsEveryStatementPostgreSQLCannotPrepare(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	bad := spec
	bad.Handlers = []declarative.Handler{
		{Topic: "A", SQL: "INSERT INTO dogs (id, nam) VALUES (@stream_id::uuid, @data->>'name')"},
		{Topic: "B", SQL: "UPDATE dogs SET tricks = tricks + 1 WHERE id = @stream_id::uuid;\nUPDATE nowhere SET x = 1"},
		{Topic: "C", SQL: "SELEC 1"},
	}
	p, err := declarative.New(bad)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Check(ctx, c)
	var ces []*declarative.CheckError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *declarative.CheckError
		if errors.As(e, &ce) {
			ces = append(ces, ce)
		}
	}
	if len(ces) != 3 {
		t.Fatalf("got %d check errors, want 3: %v", len(ces), err)
	}
	if ces[0].Topic != "A" || !strings.Contains(ces[0].Error(), `column "nam"`) {
		t.Errorf("first: %v", ces[0])
	}
	if ces[1].Topic != "B" || ces[1].Statement != 2 || ces[1].Line != 2 || !strings.Contains(ces[1].Error(), `"nowhere" does not exist`) {
		t.Errorf("second: %+v %v", ces[1], ces[1])
	}
	if ces[2].Topic != "C" || !strings.Contains(ces[2].Error(), "syntax error") {
		t.Errorf("third: %v", ces[2])
	}
	// Check changed nothing.
	var exists bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('dogs') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("Check left the schema behind: %v %v", exists, err)
	}
}

func TestCheckReportsABadSchema(t *testing.T) {
	c := testDB(t)
	bad := spec
	bad.Schema = "CREATE TABLE dogs (id uuid PRIMARY KEY, name texxt)"
	p, _ := declarative.New(bad)
	err := p.Check(context.Background(), c)
	var ce *declarative.CheckError
	if !errors.As(err, &ce) || ce.Topic != "" || !strings.Contains(err.Error(), `type "texxt" does not exist`) {
		t.Fatalf("err = %v", err)
	}
}

func TestNewRejectsBadSpecs(t *testing.T) {
	for _, s := range []declarative.Spec{
		{Handlers: spec.Handlers},
		{Name: "x"},
		{Name: "x", Handlers: []declarative.Handler{{Topic: "A", SQL: "SELECT @what"}}},
		{Name: "x", Handlers: []declarative.Handler{{Topic: "A", SQL: "SELECT 1"}, {Topic: "A", SQL: "SELECT 2"}}},
	} {
		if _, err := declarative.New(s); err == nil {
			t.Errorf("New(%+v) succeeded", s)
		}
	}
}

func ExampleParse() {
	stmts, _ := declarative.Parse("INSERT INTO dogs (id, name) VALUES (@stream_id::uuid, @data->>'name')")
	fmt.Println(stmts[0].SQL)
	fmt.Println(stmts[0].Args)
	// Output:
	// INSERT INTO dogs (id, name) VALUES (($1::text)::uuid, ($2::jsonb)->>'name')
	// [stream_id data]
}

// Replicas starting together check and apply the same schema at once: every Check and Migrate
// must succeed (unserialised DDL on the same names fails with a unique violation in the system
// catalogs).
func TestCheckAndMigrateFromReplicasStartingTogether(t *testing.T) {
	url := pgtest.NewDatabase(t, "projector_decl_")
	p, err := declarative.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 8
	ctx := context.Background()
	errs := make(chan error, 2*replicas)
	start := make(chan struct{})
	for i := 0; i < replicas; i++ {
		go func() {
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				errs <- err
				errs <- err
				return
			}
			defer func() { _ = c.Close(ctx) }()
			<-start
			errs <- p.Check(ctx, c)
			errs <- p.Migrate(ctx, c)
		}()
	}
	close(start)
	for i := 0; i < 2*replicas; i++ {
		if err := <-errs; err != nil {
			t.Errorf("replica: %v", err)
		}
	}
}

// A parameter written right after an operator (SET meta=@data) binds like any other: the
// statement prepares and runs in PostgreSQL instead of failing on an operator =@.
func TestHandleBindsAParameterRightAfterAnOperator(t *testing.T) {
	ctx := context.Background()
	c := testDB(t)
	s := spec
	s.Handlers = append(append([]declarative.Handler(nil), spec.Handlers...), declarative.Handler{
		Topic: "__main__:Dog.Tagged",
		SQL:   "UPDATE dogs SET meta=@data, tricks=tricks+@revision WHERE id=@stream_id::uuid AND tricks<=@revision",
	})
	p, err := declarative.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := apply(t, c, p, event("__main__:Dog.Registered", 0, 100, `{"name":"Fido"}`), event("__main__:Dog.Tagged", 1, 200, `{"tag":"good"}`)); err != nil {
		t.Fatal(err)
	}
	var meta string
	var n int
	if err := c.QueryRow(ctx, "SELECT meta::text, tricks FROM dogs WHERE id = $1", fido).Scan(&meta, &n); err != nil {
		t.Fatal(err)
	}
	if meta != `{"tag": "good"}` || n != 1 {
		t.Errorf("dog row = %s, %d tricks; want {\"tag\": \"good\"}, 1", meta, n)
	}
}
