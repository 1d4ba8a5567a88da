package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// The on_change policies other than rebuild, and a definition that cannot be rebuilt: fail
// refuses to start (exit 2) naming the projection and what changed; a schema-qualified
// definition is refused with an error naming the name; continue adopts the new definition
// from the current position, its schema SQL bringing the live table to it.
func TestOnChangeFailContinueAndQualifiedNames(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	last := appendDogs(t, client, 0, 20, 3)
	v1, cfgFile, addr, env := servedPetsV1(t, dbURL, uri, last)

	writeFileAt(t, cfgFile, fmt.Sprintf(petsV2, 1000, "fail", ""))
	code, _, stderr := runProjector(t, env, "run")
	if code != 2 || !strings.Contains(stderr, `projection "pets": on_change: the definition differs from the serving version `+fingerprint(t, v1)) ||
		!strings.Contains(stderr, `changed: schema, handlers."__main__:Dog.TrickAdded"`) {
		t.Fatalf("on_change fail: exit %d: %s", code, stderr)
	}

	writeFileAt(t, cfgFile, fmt.Sprintf(petsV2, 1000, "rebuild", "public."))
	code, _, stderr = runProjector(t, env, "run")
	if code != 2 || !strings.Contains(stderr, `projection "pets" cannot be rebuilt in a shadow schema`) ||
		!strings.Contains(stderr, `handlers."__main__:Dog.TrickAdded" names public.pets`) {
		t.Fatalf("schema-qualified: exit %d: %s", code, stderr)
	}
	var versions int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projector_versions`).Scan(&versions); err != nil || versions != 1 {
		t.Fatalf("refused starts recorded versions: %d, %v", versions, err)
	}

	v2 := strings.Replace(fmt.Sprintf(petsV2, 1000, "continue", ""), "last_trick text);", "last_trick text);\n      ALTER TABLE pets ADD COLUMN IF NOT EXISTS last_trick text;", 1)
	writeFileAt(t, cfgFile, v2)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	more := appendDogs(t, client, 20, 5, 3)
	waitHTTP(t, addr, "pets", more)
	var rows, filled int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(last_trick) FROM pets`).Scan(&rows, &filled); err != nil {
		t.Fatal(err)
	}
	if rows != 25 || filled != 5 {
		t.Fatalf("continue: %d rows, %d with last_trick; want 25 and only the 5 new ones", rows, filled)
	}
	if s := versionState(t, pool, fingerprint(t, v2)); s != "serving" {
		t.Fatalf("continued version: %q", s)
	}
	if s := versionState(t, pool, fingerprint(t, v1)); s != "archived" {
		t.Fatalf("previous version: %q", s)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// POST /v1/projections/{name}/rebuild (behind the admin token) and projector rebuild build the
// serving definition again in a shadow and swap it in, with the data unchanged; a rollback
// with nothing archived is refused with 409.
func TestRebuildCommands(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	last := appendDogs(t, client, 0, 50, 3)
	v1 := fmt.Sprintf(petsV1, 1000)
	id := fingerprint(t, v1)
	cfgFile := writeFile(t, "projections.yaml", v1)
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile, "PROJECTOR_ADMIN_TOKEN="+e2eToken)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "pets", last)
	url := "http://" + addr + "/v1/projections/pets/"
	if code, body := postJSON(t, url+"rollback", e2eToken, nil); code != 409 || !strings.Contains(body, "no earlier version keeps its tables") {
		t.Fatalf("rollback with nothing archived: %d %s", code, body)
	}
	if code, body := postJSON(t, url+"rebuild", "", nil); code != 401 {
		t.Fatalf("rebuild without the token: %d %s", code, body)
	}
	if code, body := postJSON(t, url+"rebuild", e2eToken, nil); code != 200 {
		t.Fatalf("rebuild: %d %s", code, body)
	}
	poll.Until(t, 30*time.Second, "the rebuilt version serves", func() bool { return versionState(t, pool, id+"~1") == "serving" })
	code, stdout, stderr := runProjector(t, env, "rebuild", "pets")
	if code != 0 || !strings.Contains(stdout, "rebuilding pets as version "+id+"~2") {
		t.Fatalf("projector rebuild: exit %d: %s %s", code, stdout, stderr)
	}
	poll.Until(t, 30*time.Second, "the second rebuild serves", func() bool { return versionState(t, pool, id+"~2") == "serving" })
	more := appendDogs(t, client, 50, 5, 3)
	waitHTTP(t, addr, "pets", more)
	var rows, total int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), sum(tricks) FROM pets`).Scan(&rows, &total); err != nil || rows != 55 || total != 165 {
		t.Fatalf("after two rebuilds: %d rows, %d tricks (%v); want 55 and 165", rows, total, err)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
