package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// roundTrips records what a connection sends, one entry per round trip: a statement ("q ...")
// or a batch ("batch" and its statements).
type roundTrips struct {
	mu   sync.Mutex
	sent []string
}

func (r *roundTrips) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

func (r *roundTrips) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add("q " + d.SQL)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var sqls []string
	for _, q := range d.Batch.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	r.add("batch " + strings.Join(sqls, " | "))
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// A lazy transaction sends its BEGIN with its first batch, in the same round trip, or on its
// own ahead of a single statement, and is a transaction all the same: what it did is gone after
// a rollback, and kept after a commit.
func TestLazyTxBeginsWithItsFirstStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	trips := &roundTrips{}
	cfg := pgtest.Config(t, schema).ConnConfig
	cfg.Tracer = trips
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE TABLE seen (n int)"); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM seen").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	trips.take()

	// A batch first: BEGIN rides along; rolled back, nothing stays.
	tx := newLazyTx(conn, []string{"BEGIN"})
	b := &pgx.Batch{}
	b.Queue("INSERT INTO seen VALUES (1)")
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if got := trips.take(); len(got) != 1 || got[0] != "batch BEGIN | INSERT INTO seen VALUES (1)" {
		t.Errorf("round trips of the first batch: %q, want one batch led by BEGIN", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("after a rollback: %d rows, want 0", n)
	}

	// A statement first: BEGIN goes on its own; committed, the row stays; a savepoint rolled
	// back takes only its own row.
	tx = newLazyTx(conn, []string{"BEGIN"})
	if _, err := tx.Exec(ctx, "INSERT INTO seen VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Exec(ctx, "INSERT INTO seen VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	if err := sp.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Rollback after Commit = %v, want ErrTxClosed", err)
	}
	if n := count(); n != 1 {
		t.Errorf("after a commit: %d rows, want 1 (the savepoint's rolled back)", n)
	}
	trips.take()

	// Untouched, it sends nothing at all.
	tx = newLazyTx(conn, []string{"BEGIN"})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := trips.take(); len(got) != 0 {
		t.Errorf("an untouched transaction sent %q", got)
	}

	// The connection itself is handed over only inside the transaction.
	tx = newLazyTx(conn, []string{"BEGIN"})
	if _, err := tx.Conn().Exec(ctx, "INSERT INTO seen VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("a statement on Conn() outlived the rollback: %d rows, want 1", n)
	}
}

// A BEGIN that sets the search path goes ahead of a batch, on its own: pgx prepares a batch's
// new statements before it runs any, and they must be prepared under their search path.
func TestLazyTxSetsTheSearchPathBeforeABatchIsPrepared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	conn, err := pgx.ConnectConfig(ctx, pgtest.Config(t, schema).ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	other := pgx.Identifier{schema + "_v2"}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+other+"; CREATE TABLE "+other+".only_there (n int)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP SCHEMA "+other+" CASCADE") })
	tx := newLazyTx(conn, []string{"BEGIN", "SET LOCAL search_path TO " + other})
	defer func() { _ = tx.Rollback(ctx) }()
	b := &pgx.Batch{}
	b.Queue("INSERT INTO only_there VALUES ($1)", 1)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		t.Fatalf("a batch under the transaction's search path: %v", err)
	}
}

// Tx.TakeBegin hands the pending BEGIN over once, and not while statements are queued (they
// would go after it).
func TestTxTakeBegin(t *testing.T) {
	tx := &Tx{Tx: newLazyTx(nil, []string{"BEGIN", "SET LOCAL search_path TO x"})}
	tx.Queue("SELECT 1")
	if got := tx.TakeBegin(); got != nil {
		t.Errorf("TakeBegin with a statement queued = %q, want nil", got)
	}
	tx.batch, tx.queries = nil, nil
	if got := tx.TakeBegin(); strings.Join(got, "; ") != "BEGIN; SET LOCAL search_path TO x" {
		t.Errorf("TakeBegin = %q", got)
	}
	if got := tx.TakeBegin(); got != nil {
		t.Errorf("second TakeBegin = %q, want nil", got)
	}
}

// A batch costs two round trips: its statements with BEGIN, then its tracking advance with
// COMMIT (the leadership fence and version check go with them too).
func TestApplyTakesTwoRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	trips := &roundTrips{}
	cfg := pgtest.Config(t, schema)
	cfg.ConnConfig.Tracer = trips
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := New(pool, Options{})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE seen (n int)"); err != nil {
		t.Fatal(err)
	}
	write := func(n int) func(context.Context, pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error { return Queue(ctx, tx, "INSERT INTO seen VALUES ($1)", n) }
	}
	pos := func(c uint64) tracking.State { return tracking.State{Last: tracking.Position{Commit: c, Prepare: c}} }
	if err := store.Apply(ctx, "p", tracking.State{}, pos(1), write(1)); err != nil { // reads the schema once
		t.Fatal(err)
	}
	trips.take()
	if err := store.Apply(ctx, "p", pos(1), pos(2), write(2)); err != nil {
		t.Fatal(err)
	}
	got := trips.take()
	if len(got) != 2 || !strings.HasPrefix(got[0], "batch BEGIN | INSERT INTO seen") ||
		!strings.Contains(got[1], "projector_advance") || !strings.HasSuffix(got[1], "| COMMIT") {
		t.Errorf("round trips of a batch:\n%s\nwant BEGIN with the statements, then the advance with COMMIT", strings.Join(got, "\n"))
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM seen").Scan(&n); err != nil || n != 2 {
		t.Errorf("rows = %d (%v), want 2", n, err)
	}
}

// Large objects work in a lazy transaction (and go with its rollback); on a connection that
// has died they fail with an error rather than a panic.
func TestLazyTxLargeObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, pgtest.Config(t, pgtest.NewSchema(t)).ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	tx := newLazyTx(conn, []string{"BEGIN"})
	los := tx.LargeObjects()
	oid, err := los.Create(ctx, 0)
	if err != nil {
		t.Fatalf("create a large object: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = $1)", oid).Scan(&exists); err != nil || exists {
		t.Errorf("large object %d after the rollback: exists %v (%v), want gone", oid, exists, err)
	}

	_ = conn.Close(ctx)
	tx = newLazyTx(conn, []string{"BEGIN"})
	closed := tx.LargeObjects()
	if _, err := closed.Create(ctx, 0); err == nil {
		t.Error("a large object on a closed connection: no error")
	}
}
