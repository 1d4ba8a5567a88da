package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/views/postgres"
)

// petsV1 is a projection of the training school's dogs: one row per dog with its number of
// tricks. petsV2 adds a column its handler fills: the dog's last trick.
const petsV1 = `projections:
  - name: pets
    batch: {size: %d}
    schema: |
      CREATE TABLE IF NOT EXISTS pets (id text PRIMARY KEY, name text NOT NULL, tricks int NOT NULL DEFAULT 0);
    handlers:
      "__main__:Dog.Registered": INSERT INTO pets (id, name) VALUES (@stream_id, @data->>'name')
      "__main__:Dog.TrickAdded": UPDATE pets SET tricks = tricks + 1 WHERE id = @stream_id
`

const petsV2 = `projections:
  - name: pets
    batch: {size: %d}
    on_change: %s
    schema: |
      CREATE TABLE IF NOT EXISTS pets (id text PRIMARY KEY, name text NOT NULL, tricks int NOT NULL DEFAULT 0,
        last_trick text);
      CREATE INDEX IF NOT EXISTS pets_last_trick ON pets (last_trick);
    handlers:
      "__main__:Dog.Registered": INSERT INTO pets (id, name) VALUES (@stream_id, @data->>'name')
      "__main__:Dog.TrickAdded": |
        UPDATE %spets SET tricks = tricks + 1, last_trick = @data->>'trick' WHERE id = @stream_id
`

// fingerprint is the version of the projection of the projections file content yaml.
func fingerprint(t testing.TB, yaml string) string {
	t.Helper()
	cfg, err := config.Parse("p.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Projections[0].Definition().Fingerprint()
}

// reader queries the pets view every few milliseconds until stopped, and records whether it
// ever failed or saw fewer rows or fewer tricks than the read before.
type reader struct {
	stop         chan struct{}
	done         chan struct{}
	mu           sync.Mutex
	reads        int
	rows, tricks int64
	problems     []string
	longest      time.Duration
}

func startReader(pool *pgxpool.Pool) *reader {
	r := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			start := time.Now()
			var rows, tricks int64
			err := pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(tricks), 0) FROM pets`).Scan(&rows, &tricks)
			took := time.Since(start)
			r.mu.Lock()
			r.reads++
			r.longest = max(r.longest, took)
			switch {
			case err != nil:
				r.problems = append(r.problems, err.Error())
			case rows < r.rows || tricks < r.tricks:
				r.problems = append(r.problems, fmt.Sprintf("read %d rows and %d tricks after %d and %d", rows, tricks, r.rows, r.tricks))
			default:
				r.rows, r.tricks = rows, tricks
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) finish(t *testing.T) {
	t.Helper()
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) > 0 {
		t.Fatalf("the reader saw %d problems in %d reads; the first: %v", len(r.problems), r.reads, r.problems[0])
	}
	t.Logf("the reader read %d times; the longest read took %s", r.reads, r.longest)
}

func versionState(t testing.TB, pool *pgxpool.Pool, id string) string {
	t.Helper()
	var s string
	_ = pool.QueryRow(context.Background(), `SELECT state FROM projector_versions WHERE projection = 'pets' AND version = $1`, id).Scan(&s)
	return s
}

// A changed definition (a new column its handler fills) deployed by restarting the daemon is
// built in a shadow schema while the old version stays live, then swapped in: a reader
// querying the view throughout never sees fewer rows or tricks than before, every row has the
// new column after the swap, and the events appended during the build are in both versions
// exactly once. A rollback then swaps the old version back, and it catches up.
func TestChangedDefinitionIsRebuiltInAShadowAndSwappedIn(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	const dogs, tricks = 300, 3
	last := appendDogs(t, client, 0, dogs, tricks)
	v1 := fmt.Sprintf(petsV1, 1000)
	cfgFile := writeFile(t, "projections.yaml", v1)
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "pets", last)
	if s := versionState(t, pool, fingerprint(t, v1)); s != "serving" {
		t.Fatalf("version of the first definition: %q, want serving", s)
	}
	r := startReader(pool)
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Deploy the new definition, with a small batch so the build lasts while dogs are added.
	v2 := fmt.Sprintf(petsV2, 20, "rebuild", "")
	writeFileAt(t, cfgFile, v2)
	d = start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	more := appendDogs(t, client, dogs, 100, tricks)
	id2 := fingerprint(t, v2)
	poll.Until(t, 60*time.Second, "the new version serves", func() bool { return versionState(t, pool, id2) == "serving" })
	waitHTTP(t, addr, "pets", more)
	r.finish(t)

	var rows, total, filled int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), sum(tricks), count(last_trick) FROM pets`).Scan(&rows, &total, &filled); err != nil {
		t.Fatal(err)
	}
	if rows != dogs+100 || total != (dogs+100)*tricks || filled != rows {
		t.Fatalf("after the swap: %d rows, %d tricks, %d with last_trick; want %d, %d, all", rows, total, filled, dogs+100, (dogs+100)*tricks)
	}
	archive := postgres.ArchiveSchema("pets", fingerprint(t, v1))
	var archived, wrong int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE tricks > 3) FROM `+archive+`.pets`).Scan(&archived, &wrong); err != nil {
		t.Fatal(err)
	}
	// The old version applied some of the dogs added during the build before the swap, each
	// exactly once (the last one perhaps in part), as the new version did all of them.
	if archived <= dogs || wrong != 0 {
		t.Fatalf("archived version: %d rows (want more than the %d from before the build), %d with more than 3 tricks", archived, dogs, wrong)
	}
	var partial int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+archive+`.pets WHERE tricks <> 3`).Scan(&partial); err != nil || partial > 1 {
		t.Fatalf("archived version: %d dogs with fewer than 3 tricks (%v); want at most the last one", partial, err)
	}
	var indexed int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_indexes
		WHERE schemaname = current_schema() AND indexname = 'pets_last_trick'`).Scan(&indexed); err != nil || indexed != 1 {
		t.Fatalf("the deferred index pets_last_trick is not on the live table (%d, %v)", indexed, err)
	}
	for _, want := range []string{"building the new version in a shadow schema", "building without the secondary indexes",
		"built the new version's deferred indexes", "pets_last_trick", "swapped in the new version", "readers_blocked"} {
		poll.Until(t, 10*time.Second, "the log says "+want, func() bool { return strings.Contains(d.Output(), want) })
	}

	// Roll back: the first version serves again and catches up with the dogs added since.
	code, stdout, stderr := runProjector(t, env, "rollback", "pets")
	if code != 0 {
		t.Fatalf("rollback: exit %d: %s %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "rolled pets back to version "+fingerprint(t, v1)) {
		t.Fatalf("rollback said %q", stdout)
	}
	latest := appendDogs(t, client, dogs+100, 10, tricks)
	waitHTTP(t, addr, "pets", latest)
	poll.Until(t, 30*time.Second, "the rolled-back version catches up", func() bool {
		var n int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM pets WHERE tricks = 3`).Scan(&n)
		return n == dogs+110
	})
	var cols int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'pets' AND column_name = 'last_trick'`).Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("the rolled-back table has last_trick (%d, %v)", cols, err)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// writeFileAt replaces the content of the file at path.
func writeFileAt(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A daemon killed while it builds a new version resumes the build from the shadow's own
// tracking when it restarts, and the swapped-in version has every event exactly once.
func TestBuildResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	const dogs, tricks = 600, 3
	last := appendDogs(t, client, 0, dogs, tricks)
	_, cfgFile, addr, env := servedPetsV1(t, dbURL, uri, last)

	// The build must last long enough to be killed mid-way.
	v2 := slowPetsV2()
	id2 := fingerprint(t, v2)
	writeFileAt(t, cfgFile, v2)
	d := start(t, projectorBin, env, "run")
	shadowPosition := func() int64 {
		var c int64
		_ = pool.QueryRow(context.Background(), `SELECT commit_position FROM projector_tracking WHERE projection = $1`, postgres.VersionTracking("pets", id2)).Scan(&c)
		return c
	}
	poll.Until(t, 30*time.Second, "the build is under way", func() bool { return shadowPosition() > 0 })
	// Its progress shows in /v1/projections, on the projection it will serve, and in status.
	poll.Until(t, 10*time.Second, "/v1/projections reports the build", func() bool {
		var l httpapi.ListJSON
		getJSON(t, "http://"+addr+"/v1/projections", &l)
		for _, p := range l.Projections {
			if r := p.Rebuild; p.Name == "pets" && r != nil && r.Version == id2 && r.Position > 0 && r.ServingPosition >= last && r.EventsPerSecond > 0 {
				return true
			}
		}
		return false
	})
	code, stdout, _ := runProjector(t, env, "status")
	if code != 0 || !strings.Contains(stdout, "pets: building version "+id2+" in schema "+postgres.ShadowSchema("pets", id2)) {
		t.Fatalf("status during the build: exit %d:\n%s", code, stdout)
	}
	if code := d.Signal(syscall.SIGKILL, exitTimeout); code != -1 {
		t.Fatalf("SIGKILL: exit %d", code)
	}
	killedAt := shadowPosition()
	if s := versionState(t, pool, id2); s != "building" {
		t.Fatalf("the killed build is %q, want building", s)
	}
	if uint64(killedAt) >= last {
		t.Fatalf("the build was over (at %d of %d) before the kill: make it longer", killedAt, last)
	}

	d = start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	poll.Until(t, 60*time.Second, "the new version serves", func() bool { return versionState(t, pool, id2) == "serving" })
	waitHTTP(t, addr, "pets", last)
	var rows, total, filled int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), sum(tricks), count(last_trick) FROM pets`).Scan(&rows, &total, &filled); err != nil {
		t.Fatal(err)
	}
	if rows != dogs || total != dogs*tricks || filled != dogs {
		t.Fatalf("after the resumed build: %d rows, %d tricks, %d with last_trick; want %d, %d, %d", rows, total, filled, dogs, dogs*tricks, dogs)
	}
	if strings.Contains(d.Output(), "definition changed: building") {
		t.Fatal("the restarted daemon started the build over instead of resuming it")
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// servedPetsV1 runs a daemon on the first pets definition (petsV1, batches of 1000) until it
// has projected through last, then stops it. It returns the definition, its file, and the
// address and environment (with extraEnv) the next daemon runs with on a changed file.
func servedPetsV1(t *testing.T, dbURL, uri string, last uint64, extraEnv ...string) (v1, cfgFile, addr string, env []string) {
	t.Helper()
	v1 = fmt.Sprintf(petsV1, 1000)
	cfgFile = writeFile(t, "projections.yaml", v1)
	addr = testbin.FreeAddr(t)
	env = testbin.Env(append([]string{"KURRENTDB_URI=" + uri, "DATABASE_URL=" + dbURL, "PROJECTOR_HTTP_ADDR=" + addr, "PROJECTOR_CONFIG=" + cfgFile}, extraEnv...)...)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "pets", last)
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	return v1, cfgFile, addr, env
}

// slowPetsV2 is the second pets definition in batches of one event, each trick taking 5 ms
// more, so that its build lasts long enough to act on mid-way however fast the machine is.
func slowPetsV2() string {
	return strings.Replace(fmt.Sprintf(petsV2, 1, "rebuild", ""), "WHERE id = @stream_id\n",
		"WHERE id = @stream_id;\n        SELECT pg_sleep(0.005)\n", 1)
}
