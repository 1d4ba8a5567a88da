package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

// indexesIn returns the names of the indexes of schema, sorted.
func indexesIn(t *testing.T, store *postgres.Store, schema string) []string {
	t.Helper()
	rows, err := store.Pool().Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY 1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A shadow is built without its secondary indexes: PrepareShadow drops them (again after a
// restart) and keeps the primary key, unique indexes and constraints; the swap refuses until
// BuildDeferredIndexes has created them, with their definitions, and they move in with the
// tables.
func TestShadowDefersSecondaryIndexes(t *testing.T) {
	ctx := context.Background()
	store, pool := versionedStore(t)
	v1, v2 := dogsV1(), dogsV2()
	v2.Schema = `CREATE TABLE IF NOT EXISTS dogs (id text PRIMARY KEY, name text, tricks int NOT NULL, n bigserial,
		chip text UNIQUE, tag text, CONSTRAINT dogs_tag_key UNIQUE (tag));
		CREATE INDEX IF NOT EXISTS dogs_name ON dogs (name);
		CREATE INDEX IF NOT EXISTS dogs_tricks_desc ON dogs (tricks DESC) WHERE tricks > 0;
		CREATE UNIQUE INDEX IF NOT EXISTS dogs_n ON dogs (n)`
	id1, id2 := v1.Fingerprint(), v2.Fingerprint()
	exec(t, pool, v1.Schema)
	if err := store.RecordVersion(ctx, v1, id1, postgres.Serving); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordVersion(ctx, v2, id2, postgres.Building); err != nil {
		t.Fatal(err)
	}
	schema := postgres.ShadowSchema("dogs", id2)
	kept := []string{"dogs_chip_key", "dogs_n", "dogs_pkey", "dogs_tag_key"}
	for range 2 { // the first start, and a restart during the build
		deferred, err := store.PrepareShadow(ctx, v2, id2)
		if err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, d := range deferred {
			names = append(names, d.Name)
		}
		if want := []string{"dogs_name", "dogs_tricks_desc"}; !slices.Equal(names, want) {
			t.Fatalf("deferred %v, want %v", names, want)
		}
		if got := indexesIn(t, store, schema); !slices.Equal(got, kept) {
			t.Fatalf("shadow indexes while building: %v, want %v", got, kept)
		}
	}
	shadow := postgres.VersionTracking("dogs", id2)
	if err := store.Guard(ctx, shadow, "dogs", id2, postgres.Building); err != nil {
		t.Fatal(err)
	}
	st := tracking.State{Last: pos(10)}
	if err := store.Apply(ctx, shadow, tracking.State{}, st, insertDog("a", true)); err != nil {
		t.Fatal(err)
	}
	rels, err := store.RelationsOf(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	sw := postgres.Swap{Projection: "dogs", In: id2, InSchema: schema, Out: id1, OutRelations: rels, CaughtUp: true}
	if _, err := store.Swap(ctx, sw); !errors.Is(err, postgres.ErrDeferredIndexes) {
		t.Fatalf("swap with the indexes pending: %v, want ErrDeferredIndexes", err)
	}

	built, took, err := store.BuildDeferredIndexes(ctx, "dogs", id2)
	if err != nil {
		t.Fatal(err)
	}
	if len(built) != 2 || took <= 0 {
		t.Fatalf("built %v in %v", built, took)
	}
	if got, want := indexesIn(t, store, schema), append([]string{"dogs_name", "dogs_tricks_desc"}, kept...); !slices.Equal(got, sortedCopy(want)) {
		t.Fatalf("shadow indexes after building them: %v, want %v", got, want)
	}
	var def string
	if err := pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'dogs_tricks_desc'`, schema).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if want := "CREATE INDEX dogs_tricks_desc ON " + schema + ".dogs USING btree (tricks DESC) WHERE (tricks > 0)"; def != want {
		t.Fatalf("rebuilt index: %q, want %q", def, want)
	}
	if pending, err := store.DeferredIndexes(ctx, "dogs", id2); err != nil || len(pending) != 0 {
		t.Fatalf("pending after the build: %v, %v", pending, err)
	}
	if again, _, err := store.BuildDeferredIndexes(ctx, "dogs", id2); err != nil || len(again) != 0 {
		t.Fatalf("a second build: %v, %v; want nothing to do", again, err)
	}
	if _, err := store.Swap(ctx, sw); err != nil {
		t.Fatal(err)
	}
	var live string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if got := indexesIn(t, store, live); !slices.Contains(got, "dogs_name") || !slices.Contains(got, "dogs_tricks_desc") {
		t.Fatalf("live indexes after the swap: %v", got)
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
