package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/views/postgres"
)

// A view and a foreign key of the application on the live table refuse a rebuild by default
// (exit 2, naming them); with on_dependency: proceed the new version is built and swapped in,
// the daemon names them in its log at the start and at the swap, and they keep pointing at
// the old table, now in the archive schema.
func TestOnDependencyProceedSwapsAndLeavesDependentsOnTheArchive(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	last := appendDogs(t, client, 0, 20, 3)
	v1, cfgFile, addr, env := servedPetsV1(t, dbURL, uri, last)
	ctx := context.Background()
	var pet string
	if err := pool.QueryRow(ctx, `SELECT min(id) FROM pets`).Scan(&pet); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE VIEW pet_names AS SELECT id, name FROM pets;
		CREATE TABLE visits (pet text REFERENCES pets (id)); INSERT INTO visits VALUES ('`+pet+`')`); err != nil {
		t.Fatal(err)
	}

	writeFileAt(t, cfgFile, fmt.Sprintf(petsV2, 1000, "rebuild", ""))
	code, _, stderr := runProjector(t, env, "run")
	if code != 2 || !strings.Contains(stderr, "foreign key visits_pet_fkey of visits, view pet_names") || !strings.Contains(stderr, "on_dependency: proceed") {
		t.Fatalf("a rebuild with dependents, by default: exit %d: %s", code, stderr)
	}

	v2 := fmt.Sprintf(petsV2, 1000, "rebuild\n    on_dependency: proceed", "")
	writeFileAt(t, cfgFile, v2)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	id2 := fingerprint(t, v2)
	poll.Until(t, 60*time.Second, "the new version serves", func() bool { return versionState(t, pool, id2) == "serving" })
	for _, want := range []string{"will not move with them (on_dependency: proceed)", "still point at the old tables, now archived",
		`"dependents":["foreign key visits_pet_fkey of visits","view pet_names"]`} {
		poll.Until(t, 10*time.Second, "the log says "+want, func() bool { return strings.Contains(d.Output(), want) })
	}
	more := appendDogs(t, client, 20, 5, 3)
	waitHTTP(t, addr, "pets", more)

	archive := postgres.ArchiveSchema("pets", fingerprint(t, v1))
	var def string
	if err := pool.QueryRow(ctx, `SELECT pg_get_viewdef('pet_names')`).Scan(&def); err != nil || !strings.Contains(def, archive+".pets") {
		t.Fatalf("the view's definition after the swap: %q (%v), want it on %s.pets", def, err, archive)
	}
	var live, viewed int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pets WHERE last_trick IS NOT NULL), (SELECT count(*) FROM pet_names)`).Scan(&live, &viewed); err != nil {
		t.Fatal(err)
	}
	if live != 25 || viewed != 20 {
		t.Fatalf("live pets with last_trick: %d (want 25); pets in the view on the archive: %d (want 20)", live, viewed)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// Under on_dependency: refuse (the default), a view of the live table created while a version
// builds holds up the swap, with a warning naming it, until it is dropped.
func TestDependentCreatedDuringTheBuildHoldsUpTheSwap(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	last := appendDogs(t, client, 0, 100, 3)
	_, cfgFile, addr, env := servedPetsV1(t, dbURL, uri, last)

	// Each trick takes 5 ms more, so the build of 300 tricks lasts well past the view's creation.
	v2 := slowPetsV2()
	writeFileAt(t, cfgFile, v2)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	id2 := fingerprint(t, v2)
	poll.Until(t, 30*time.Second, "the new version builds", func() bool { return versionState(t, pool, id2) == "building" })
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE VIEW pet_names AS SELECT id, name FROM pets`); err != nil {
		t.Fatal(err)
	}
	if s := versionState(t, pool, id2); s != "building" {
		t.Fatalf("the build ended before the view was created (%q): make it slower", s)
	}
	poll.Until(t, 60*time.Second, "the swap waits for the view", func() bool {
		return strings.Contains(d.Output(), `"swap waits: other relations depend on the live tables`) && strings.Contains(d.Output(), `"dependents":["view pet_names"]`)
	})
	if s := versionState(t, pool, id2); s != "building" {
		t.Fatalf("the version was swapped in with a view on the live table: %q", s)
	}
	if _, err := pool.Exec(ctx, `DROP VIEW pet_names`); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the new version serves once the view is gone", func() bool { return versionState(t, pool, id2) == "serving" })
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
