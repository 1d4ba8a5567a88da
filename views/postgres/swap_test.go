package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// versionedStore returns a migrated store on a database of its own (shadow and archive schemas
// are named per database) and its pool.
func versionedStore(t testing.TB) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t, "projector_versions_"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, postgres.Options{})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store, pool
}

func dogsV1() versions.Definition {
	return versions.Definition{Name: "dogs",
		Schema:   "CREATE TABLE IF NOT EXISTS dogs (id text PRIMARY KEY, name text); CREATE INDEX IF NOT EXISTS dogs_name ON dogs (name)",
		Handlers: []versions.Handler{{Topic: "Dog.Registered", SQL: "INSERT INTO dogs (id, name) VALUES (@stream_id, @data->>'name')"}}}
}

func dogsV2() versions.Definition {
	d := dogsV1()
	d.Schema = "CREATE TABLE IF NOT EXISTS dogs (id text PRIMARY KEY, name text, tricks int NOT NULL, n bigserial); CREATE INDEX IF NOT EXISTS dogs_name ON dogs (name)"
	d.Handlers[0].SQL = "INSERT INTO dogs (id, name, tricks) VALUES (@stream_id, @data->>'name', 0)"
	return d
}

func exec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t testing.TB, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func insertDog(id string, tricks bool) func(ctx context.Context, tx pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error {
		sql := `INSERT INTO dogs (id, name) VALUES ($1, 'rex')`
		if tricks {
			sql = `INSERT INTO dogs (id, name, tricks) VALUES ($1, 'rex', 3)`
		}
		return postgres.Queue(ctx, tx, sql, id)
	}
}

// serveAndBuild records dogsV1 as the serving version of dogs (its tables created) and dogsV2 as
// the version building in its shadow schema, each guarded, and returns their fingerprints and
// the building version's tracking name.
func serveAndBuild(t *testing.T, ctx context.Context, store *postgres.Store, pool *pgxpool.Pool) (id1, id2, shadow string) {
	t.Helper()
	v1, v2 := dogsV1(), dogsV2()
	id1, id2 = v1.Fingerprint(), v2.Fingerprint()
	exec(t, pool, v1.Schema)
	if err := store.RecordVersion(ctx, v1, id1, postgres.Serving); err != nil {
		t.Fatal(err)
	}
	if err := store.Guard(ctx, "dogs", "dogs", id1, postgres.Serving); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PrepareShadow(ctx, v2, id2); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordVersion(ctx, v2, id2, postgres.Building); err != nil {
		t.Fatal(err)
	}
	shadow = postgres.VersionTracking("dogs", id2)
	if err := store.Guard(ctx, shadow, "dogs", id2, postgres.Building); err != nil {
		t.Fatal(err)
	}
	return id1, id2, shadow
}

// A new version builds in its shadow schema while the serving version writes the live tables;
// the swap waits until it has caught up, then moves the live tables to the archive and the
// shadow's in, with tracking and versions; the old version can no longer commit; a rollback
// swaps the archived version back.
func TestSwapServesTheShadowAndRollsBack(t *testing.T) {
	ctx := context.Background()
	store, pool := versionedStore(t)
	v1, v2 := dogsV1(), dogsV2()
	id1, id2, shadow := serveAndBuild(t, ctx, store, pool)
	s10 := tracking.State{Last: pos(10)}
	if err := store.Apply(ctx, "dogs", tracking.State{}, s10, insertDog("a", false)); err != nil {
		t.Fatal(err)
	}
	s5 := tracking.State{Last: pos(5)}
	if err := store.Apply(ctx, shadow, tracking.State{}, s5, insertDog("a", true)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM dogs`); n != 1 {
		t.Fatalf("live dogs: %d rows, want 1", n)
	}
	schema := postgres.ShadowSchema("dogs", id2)
	if n := count(t, pool, `SELECT count(*) FROM `+pgx.Identifier{schema, "dogs"}.Sanitize()+` WHERE tricks = 3`); n != 1 {
		t.Fatalf("shadow dogs: %d rows with tricks, want 1", n)
	}

	rels, err := store.RelationsOf(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []postgres.Relation{{Name: "dogs", Kind: "TABLE"}}; !slices.Equal(rels, want) {
		t.Fatalf("RelationsOf = %v, want %v", rels, want)
	}
	if _, _, err := store.BuildDeferredIndexes(ctx, "dogs", id2); err != nil {
		t.Fatal(err)
	}
	sw := postgres.Swap{Projection: "dogs", In: id2, InSchema: schema, Out: id1, OutRelations: rels, CaughtUp: true, CatchUpWait: 50 * time.Millisecond}
	if _, err := store.Swap(ctx, sw); !errors.Is(err, postgres.ErrNotCaughtUp) {
		t.Fatalf("swap behind the serving version: %v, want ErrNotCaughtUp", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'dogs' AND column_name = 'tricks' AND table_schema = current_schema()`); n != 0 {
		t.Fatal("a refused swap changed the live table")
	}
	if err := store.Apply(ctx, shadow, s5, s10, insertDog("b", true)); err != nil {
		t.Fatal(err)
	}
	// Each version has parked a stream: the parked streams follow their version's tracking.
	park := func(name string, st tracking.State, stream string) {
		t.Helper()
		e := projection.Event{ID: "e-" + stream, Type: "Dog.Registered", Stream: stream, Position: pos(3), Data: []byte(`{}`)}
		if err := store.Apply(ctx, name, st, st, func(ctx context.Context, tx pgx.Tx) error {
			return store.Park(ctx, tx, name, e, errors.New("boom"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	parkedOf := func(name string) []string {
		t.Helper()
		ps, err := postgres.ListParkedStreams(ctx, pool, name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.Stream)
		}
		return out
	}
	park("dogs", s10, "parked-by-v1")
	park(shadow, s10, "parked-by-v2")
	done, err := store.Swap(ctx, sw)
	if err != nil {
		t.Fatal(err)
	}
	if got, old := parkedOf("dogs"), parkedOf(postgres.VersionTracking("dogs", id1)); !slices.Equal(got, []string{"parked-by-v2"}) || !slices.Equal(old, []string{"parked-by-v1"}) {
		t.Fatalf("parked streams after the swap: serving %v, archived %v", got, old)
	}
	if done.State != s10 || done.Blocked <= 0 {
		t.Fatalf("Swapped = %+v", done)
	}
	if n := count(t, pool, `SELECT count(*) FROM dogs WHERE tricks = 3`); n != 2 {
		t.Fatalf("live dogs after the swap: %d rows with tricks, want 2", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_indexes WHERE indexname = 'dogs_name' AND schemaname = current_schema()`); n != 1 {
		t.Fatal("the index did not move in with its table")
	}
	archive := postgres.ArchiveSchema("dogs", id1)
	if n := count(t, pool, `SELECT count(*) FROM `+pgx.Identifier{archive, "dogs"}.Sanitize()); n != 1 {
		t.Fatalf("archived dogs: %d rows, want 1", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_namespace WHERE nspname = '`+schema+`'`); n != 0 {
		t.Fatal("the empty shadow schema is left")
	}
	for name, want := range map[string]tracking.State{"dogs": s10, postgres.VersionTracking("dogs", id1): s10} {
		if got, _, _ := store.Load(ctx, name); got != want {
			t.Fatalf("tracking of %s: %v, want %v", name, got, want)
		}
	}
	if _, ok, _ := store.Load(ctx, shadow); ok {
		t.Fatal("the shadow's tracking row is left")
	}
	vs, err := store.Versions(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]postgres.VersionState{}
	for _, v := range vs {
		states[v.ID] = v.State
	}
	if states[id1] != postgres.Archived || states[id2] != postgres.Serving {
		t.Fatalf("versions: %v", states)
	}

	// The old version's batch is refused: it must not write the new version's tables.
	err = store.Apply(ctx, "dogs", s10, tracking.State{Last: pos(11)}, insertDog("c", false))
	if !errors.Is(err, postgres.ErrVersionChanged) || !errors.Is(err, projection.ErrLeadershipLost) {
		t.Fatalf("old version's batch: %v, want ErrVersionChanged", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM dogs`); n != 2 {
		t.Fatalf("the refused batch wrote: %d rows", n)
	}

	// Roll back: the archived version serves again, at its own position.
	rels2, err := store.RelationsOf(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Swap(ctx, postgres.Swap{Projection: "dogs", In: id1, InSchema: archive, Out: id2, OutRelations: rels2}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'dogs' AND column_name = 'tricks' AND table_schema = current_schema()`); n != 0 {
		t.Fatal("the rollback left the new table live")
	}
	if n := count(t, pool, `SELECT count(*) FROM dogs`); n != 1 {
		t.Fatalf("rolled back dogs: %d rows, want 1", n)
	}
	if got := parkedOf("dogs"); !slices.Equal(got, []string{"parked-by-v1"}) {
		t.Fatalf("parked streams after the rollback: %v, want v1's", got)
	}
	if err := store.Apply(ctx, "dogs", s10, tracking.State{Last: pos(12)}, insertDog("c", false)); err != nil {
		t.Fatalf("the rolled-back version's batch: %v", err)
	}
}

// A view or foreign key of another relation on a live table cannot move with it: Dependents
// names them.
func TestDependentsNamesViewsAndForeignKeys(t *testing.T) {
	ctx := context.Background()
	store, pool := versionedStore(t)
	exec(t, pool, dogsV1().Schema)
	rels := []postgres.Relation{{Name: "dogs", Kind: "TABLE"}}
	if deps, err := store.Dependents(ctx, rels); err != nil || len(deps) != 0 {
		t.Fatalf("Dependents = %v, %v; want none", deps, err)
	}
	exec(t, pool, `CREATE VIEW dog_names AS SELECT name FROM dogs; CREATE TABLE walks (dog text REFERENCES dogs (id))`)
	deps, err := store.Dependents(ctx, rels)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"foreign key walks_dog_fkey of walks", "view dog_names"}; !slices.Equal(deps, want) {
		t.Fatalf("Dependents = %q, want %q", deps, want)
	}
}

// A ScratchConn's transactions create tables in a schema of their own, which disappears with
// them; a user who may not create schemas gets the connection's own search_path instead.
func TestScratchConn(t *testing.T) {
	ctx := context.Background()
	store, pool := versionedStore(t)
	exec(t, pool, `CREATE TABLE dogs (id text PRIMARY KEY)`)
	tx, err := postgres.ScratchConn{Pool: pool}.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS dogs (id text PRIMARY KEY, tricks int); INSERT INTO dogs VALUES ('a', 1)`); err != nil {
		t.Fatalf("the new shape in the scratch schema: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'projector_scratch_%'`); n != 0 {
		t.Fatalf("%d scratch schemas left", n)
	}
	role := pool.Config().ConnConfig.Database + "_user" // unique, as the database is
	exec(t, pool, `CREATE ROLE `+role+` LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO `+role)
	t.Cleanup(func() {
		_, _ = store.Pool().Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role)
	})
	cfg := pool.Config().Copy()
	cfg.ConnConfig.User = role
	limited, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	exec(t, pool, `REVOKE CREATE ON DATABASE `+pgx.Identifier{pool.Config().ConnConfig.Database}.Sanitize()+` FROM PUBLIC`)
	tx, err = postgres.ScratchConn{Pool: limited}.Begin(ctx)
	if err != nil {
		t.Fatalf("without the right to create schemas: %v", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var schema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil || schema != "public" {
		t.Fatalf("current schema without a scratch schema: %q, %v", schema, err)
	}
}

// Dropping a building version while one of its batches is in flight waits for the batch
// instead of deadlocking with it: the batch holds the version's tables and then takes a
// share lock on its row (the version check), so the drop takes the tables first too.
func TestDropVersionWaitsForABatchInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, pool := versionedStore(t)
	_, id2, shadow := serveAndBuild(t, ctx, store, pool)
	inserted, release := make(chan struct{}), make(chan struct{})
	applied := make(chan error, 1)
	go func() {
		applied <- store.Apply(ctx, shadow, tracking.State{}, tracking.State{Last: pos(5)}, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO dogs (id, name, tricks) VALUES ('a', 'rex', 3)`); err != nil {
				return err
			}
			close(inserted)
			<-release // the drop now waits for this batch's lock on the table
			return nil
		})
	}()
	<-inserted
	dropped := make(chan error, 1)
	go func() { dropped <- store.DropVersion(ctx, "dogs", id2) }()
	poll.Until(t, 10*time.Second, "the drop waits for the batch's lock", func() bool {
		return count(t, pool, `SELECT count(*) FROM pg_locks WHERE NOT granted`) > 0
	})
	close(release)
	if err := <-applied; err != nil {
		t.Errorf("the batch in flight: %v", err)
	}
	if err := <-dropped; err != nil {
		t.Errorf("DropVersion: %v", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM projector_versions WHERE version = '`+id2+`'`); n != 0 {
		t.Errorf("the dropped version's row is still there")
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_namespace WHERE nspname = '`+postgres.ShadowSchema("dogs", id2)+`'`); n != 0 {
		t.Errorf("the dropped version's schema is still there")
	}
}
