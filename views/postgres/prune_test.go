package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// PruneArchives keeps the most recently archived versions' tables and drops the older ones'
// schemas and tracking rows, keeping their definitions; an archive that a view of another
// relation reads is held, not dropped.
func TestPruneArchivesKeepsTheLatestAndWhatOthersDependOn(t *testing.T) {
	ctx := context.Background()
	store, pool := versionedStore(t)
	var ids []string
	var defs []versions.Definition
	for i := range 5 {
		def := dogsV1()
		def.Version = fmt.Sprint(i)
		defs, ids = append(defs, def), append(ids, def.Fingerprint())
	}
	exec(t, pool, defs[0].Schema)
	if err := store.RecordVersion(ctx, defs[0], ids[0], postgres.Serving); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(defs); i++ { // each version swapped in for the one before: 0 to 3 archived
		if _, err := store.PrepareShadow(ctx, defs[i], ids[i]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.BuildDeferredIndexes(ctx, "dogs", ids[i]); err != nil {
			t.Fatal(err)
		}
		if err := store.RecordVersion(ctx, defs[i], ids[i], postgres.Building); err != nil {
			t.Fatal(err)
		}
		if err := store.Apply(ctx, postgres.VersionTracking("dogs", ids[i]), tracking.State{}, tracking.State{Last: pos(uint64(i))}, noop); err != nil {
			t.Fatal(err)
		}
		rels, err := store.RelationsOf(ctx, defs[i-1])
		if err != nil {
			t.Fatal(err)
		}
		sw := postgres.Swap{Projection: "dogs", In: ids[i], InSchema: postgres.ShadowSchema("dogs", ids[i]), Out: ids[i-1], OutRelations: rels}
		if _, err := store.Swap(ctx, sw); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, pool, `CREATE VIEW old_dogs AS SELECT id FROM `+postgres.ArchiveSchema("dogs", ids[1])+`.dogs`)

	pruned, err := store.PruneArchives(ctx, "dogs", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pruned.Dropped, []string{ids[0]}) || len(pruned.Held) != 1 || !slices.Equal(pruned.Held[ids[1]], []string{"view old_dogs"}) {
		t.Fatalf("PruneArchives(2) = %+v; want %s dropped and %s held", pruned, ids[0], ids[1])
	}
	for i, want := range []bool{false, true, true, true} {
		if ok, err := store.SchemaExists(ctx, postgres.ArchiveSchema("dogs", ids[i])); err != nil || ok != want {
			t.Fatalf("archive of version %d exists: %v (%v), want %v", i, ok, err, want)
		}
	}
	if _, ok, _ := store.Load(ctx, postgres.VersionTracking("dogs", ids[0])); ok {
		t.Fatal("the dropped archive's tracking row is left")
	}
	if _, ok, _ := store.Load(ctx, postgres.VersionTracking("dogs", ids[2])); !ok {
		t.Fatal("a kept archive lost its tracking row")
	}
	if st := states(t, store); len(st) != 5 || st[ids[0]] != postgres.Archived || st[ids[4]] != postgres.Serving {
		t.Fatalf("versions after pruning: %v; want every definition kept", st)
	}

	exec(t, pool, `DROP VIEW old_dogs`)
	pruned, err = store.PruneArchives(ctx, "dogs", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ids[3], ids[2], ids[1]}; !slices.Equal(pruned.Dropped, want) || len(pruned.Held) != 0 {
		t.Fatalf("PruneArchives(0) = %+v; want %v dropped", pruned, want)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'projector_archive_%'`); n != 0 {
		t.Fatalf("%d archive schemas left", n)
	}
}

func states(t *testing.T, store *postgres.Store) map[string]postgres.VersionState {
	t.Helper()
	vs, err := store.Versions(context.Background(), "dogs")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]postgres.VersionState{}
	for _, v := range vs {
		out[v.ID] = v.State
	}
	return out
}
