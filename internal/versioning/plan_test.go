package versioning_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/versioning"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

const file = `projections:
  - name: dogs
    on_change: %s
    schema: CREATE TABLE IF NOT EXISTS dogs (id text PRIMARY KEY, n int NOT NULL DEFAULT 0%s)
    handlers:
      "Dog.Registered": INSERT INTO %sdogs (id) VALUES (@stream_id)
`

func parse(t *testing.T, onChange, column, qualifier string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("p.yaml", fmt.Appendf(nil, file, onChange, column, qualifier))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t, "projector_versioning_"))
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

// Plan adopts a first definition as serving; a changed one is refused under fail (naming what
// changed, recording nothing), rebuilt under rebuild (recorded as building, the serving one
// still running); the old file then runs as the serving version, and the new file joins the
// build.
func TestPlanFollowsOnChange(t *testing.T) {
	ctx := context.Background()
	store, pool := newStore(t)
	log := zap.NewNop()
	v1 := parse(t, "rebuild", "", "")
	id1 := v1.Projections[0].Definition().Fingerprint()
	es, err := versioning.Plan(ctx, store, v1, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].ServingID != id1 || es[0].Building != nil || states(t, store)[id1] != postgres.Serving {
		t.Fatalf("first plan: %+v, versions %v", es, states(t, store))
	}
	if _, err := pool.Exec(ctx, v1.Projections[0].Schema); err != nil {
		t.Fatal(err)
	}

	_, err = versioning.Plan(ctx, store, parse(t, "fail", ", tricks int", ""), log)
	if !config.IsValidation(err) || !strings.Contains(err.Error(), `p.yaml:2: projection "dogs": on_change: the definition differs from the serving version `+id1+" (changed: schema)") {
		t.Fatalf("on_change fail: %v", err)
	}
	if len(states(t, store)) != 1 {
		t.Fatalf("a refused plan recorded versions: %v", states(t, store))
	}

	v2 := parse(t, "rebuild", ", tricks int", "")
	id2 := v2.Projections[0].Definition().Fingerprint()
	es, err = versioning.Plan(ctx, store, v2, log)
	if err != nil {
		t.Fatal(err)
	}
	if es[0].ServingID != id1 || es[0].BuildingID != id2 || es[0].Building.Schema != v2.Projections[0].Schema || states(t, store)[id2] != postgres.Building {
		t.Fatalf("rebuild plan: %+v", es[0])
	}
	// The old file: serving, with the build; the new one again: the same.
	for _, cfg := range []*config.Config{v1, v2} {
		es, err = versioning.Plan(ctx, store, cfg, log)
		if err != nil || es[0].ServingID != id1 || es[0].BuildingID != id2 || es[0].Stale {
			t.Fatalf("plan again: %+v, %v", es, err)
		}
	}
	// Cancelled, the build is gone, shadow schema and all.
	if _, err := store.PrepareShadow(ctx, *es[0].Building, id2); err != nil {
		t.Fatal(err)
	}
	if id, err := versioning.Cancel(ctx, store, "dogs"); err != nil || id != id2 {
		t.Fatalf("Cancel = %q, %v; want %s", id, err, id2)
	}
	if ok, err := store.SchemaExists(ctx, postgres.ShadowSchema("dogs", id2)); err != nil || ok {
		t.Fatalf("the shadow schema is left (%v)", err)
	}
	es, err = versioning.Plan(ctx, store, v1, log)
	if err != nil || es[0].Building != nil || len(states(t, store)) != 1 {
		t.Fatalf("plan after the cancel: %+v, %v, versions %v", es, err, states(t, store))
	}
	if id, err := versioning.Cancel(ctx, store, "dogs"); err != nil || id != "" {
		t.Fatalf("Cancel with nothing building = %q, %v", id, err)
	}
}

// A schema-qualified definition and live tables others depend on are refused before anything
// is recorded; continue adopts the change and archives the old version without tables.
func TestPlanRefusesWhatCannotBeRebuilt(t *testing.T) {
	ctx := context.Background()
	store, pool := newStore(t)
	log := zap.NewNop()
	v1 := parse(t, "rebuild", "", "")
	if _, err := versioning.Plan(ctx, store, v1, log); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, v1.Projections[0].Schema); err != nil {
		t.Fatal(err)
	}
	qualified := parse(t, "rebuild", ", tricks int", "public.")
	if err := versioning.Precheck(ctx, store, qualified); err == nil || !strings.Contains(err.Error(), `handlers."Dog.Registered" names public.dogs`) {
		t.Fatalf("Precheck of a qualified definition: %v", err)
	}
	if _, err := versioning.Plan(ctx, store, qualified, log); err == nil || !strings.Contains(err.Error(), "cannot be rebuilt in a shadow schema") {
		t.Fatalf("Plan of a qualified definition: %v", err)
	}
	if _, err := pool.Exec(ctx, `CREATE VIEW dog_ids AS SELECT id FROM dogs`); err != nil {
		t.Fatal(err)
	}
	_, err := versioning.Plan(ctx, store, parse(t, "rebuild", ", tricks int", ""), log)
	if err == nil || !strings.Contains(err.Error(), "other relations depend on its live tables and would not move with them at the swap (view dog_ids)") {
		t.Fatalf("Plan with a dependent view: %v", err)
	}
	if len(states(t, store)) != 1 {
		t.Fatalf("refused plans recorded versions: %v", states(t, store))
	}

	cont := parse(t, "continue", ", tricks int", "")
	es, err := versioning.Plan(ctx, store, cont, log)
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := v1.Projections[0].Definition().Fingerprint(), cont.Projections[0].Definition().Fingerprint()
	if es[0].ServingID != id2 || es[0].Building != nil || states(t, store)[id1] != postgres.Archived {
		t.Fatalf("continue: %+v, versions %v", es[0], states(t, store))
	}
	if _, _, err := versioning.Rollback(ctx, store, "dogs"); err == nil || !strings.Contains(err.Error(), "no earlier version keeps its tables") {
		t.Fatalf("rollback after continue: %v", err)
	}
	// The old file is now stale: the stored serving version runs.
	es, err = versioning.Plan(ctx, store, v1, log)
	if err != nil || !es[0].Stale || es[0].ServingID != id2 || es[0].Serving.Schema != cont.Projections[0].Schema {
		t.Fatalf("stale file: %+v, %v", es, err)
	}
}

// Under on_dependency: proceed, a view of another relation on the live table does not stop
// the rebuild: the new version is recorded as building, and the log names the view.
func TestPlanProceedsPastDependentsWhenAsked(t *testing.T) {
	ctx := context.Background()
	store, pool := newStore(t)
	v1 := parse(t, "rebuild", "", "")
	if _, err := versioning.Plan(ctx, store, v1, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, v1.Projections[0].Schema+`; CREATE VIEW dog_ids AS SELECT id FROM dogs`); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(file, "rebuild", ", tricks int", "")
	text = strings.Replace(text, "    on_change: rebuild\n", "    on_change: rebuild\n    on_dependency: proceed\n", 1)
	cfg, err := config.Parse("p.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	es, err := versioning.Plan(ctx, store, cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	id2 := cfg.Projections[0].Definition().Fingerprint()
	if es[0].BuildingID != id2 || states(t, store)[id2] != postgres.Building {
		t.Fatalf("proceed: %+v, versions %v", es[0], states(t, store))
	}
	warned := logs.FilterMessageSnippet("on_dependency: proceed").All()
	if len(warned) != 1 || fmt.Sprint(warned[0].ContextMap()["dependents"]) != "[view dog_ids]" {
		t.Fatalf("warnings: %+v", logs.All())
	}
}

// The on_dependency and keep_archives of the file that deploys a new version are recorded with
// it, so a replica with the older file that joins the build (and may swap it in) follows them;
// they are not part of the version.
func TestPoliciesTravelWithTheVersionBuilding(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t)
	v1 := parse(t, "rebuild", "", "")
	if _, err := versioning.Plan(ctx, store, v1, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(fmt.Sprintf(file, "rebuild", ", tricks int", ""), "    on_change: rebuild\n",
		"    on_change: rebuild\n    on_dependency: proceed\n    keep_archives: 3\n", 1)
	v2, err := config.Parse("p.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Projections[0].Definition().Fingerprint() != parse(t, "rebuild", ", tricks int", "").Projections[0].Definition().Fingerprint() {
		t.Fatal("the policies changed the fingerprint")
	}
	if _, err := versioning.Plan(ctx, store, v2, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	es, err := versioning.Plan(ctx, store, v1, zap.NewNop()) // a replica with the older file
	if err != nil {
		t.Fatal(err)
	}
	b := es[0].Building
	if b == nil || b.OnDependency != "proceed" || b.KeepArchives == nil || *b.KeepArchives != 3 {
		t.Fatalf("the build the older replica joins: %+v", b)
	}
}
