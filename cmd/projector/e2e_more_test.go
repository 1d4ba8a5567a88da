package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// TestSIGKILLAndRestart kills the daemon mid-stream, twice, while events are being written, and
// checks that the final views count every event exactly once.
func TestSIGKILLAndRestart(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	// Small batches, so that a kill lands between many commits.
	cfg := strings.Replace(bothProjections(t), "batch: {size: 1000, interval: 10ms}", "batch: {size: 7, interval: 1ms}", 1)
	if !strings.Contains(cfg, "size: 7") {
		t.Fatal("could not set the batch size")
	}
	cfgFile := writeFile(t, "projections.yaml", cfg)
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile)

	const dogs, tricks = 150, 9
	var last atomic.Uint64
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; i < dogs; i += 10 {
			last.Store(appendDogs(t, client, i, 10, tricks))
			time.Sleep(20 * time.Millisecond)
		}
	}()

	projected := func() int {
		var n int
		_ = pool.QueryRow(context.Background(), "SELECT coalesce(sum(n), 0) FROM dog_counts").Scan(&n)
		return n
	}
	for kill, threshold := range []int{300, 900} {
		d := start(t, projectorBin, env, "run")
		healthy(t, d, addr)
		poll.Until(t, 60*time.Second, fmt.Sprintf("%d events are projected", threshold), func() bool { return projected() >= threshold })
		if code := d.Signal(syscall.SIGKILL, exitTimeout); code != -1 {
			t.Fatalf("kill %d: exit code %d, want -1 (killed)", kill, code)
		}
	}
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	<-written
	if t.Failed() {
		return
	}
	waitHTTP(t, addr, "dog_counts", last.Load())
	waitHTTP(t, addr, "dogs", last.Load())
	want := fmt.Sprintf("dogs=%d,tricks=%d dogs=%d tricks=%d rows=%d", dogs, dogs*tricks, dogs, dogs*tricks, dogs*tricks)
	if got := viewDigest(t, pool); !strings.HasPrefix(got, want) {
		t.Fatalf("after two kills: %s, want %s", got, want)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

// TestValidationErrors checks that every kind of configuration mistake is reported before a
// single event is consumed, naming the file, line, projection and key, with exit code 2.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	appendDogs(t, client, 0, 3, 2)
	good := "projections:\n  - name: a\n    schema: CREATE TABLE IF NOT EXISTS a (n int);\n    handlers:\n      T: INSERT INTO a VALUES (1)\n"
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{name: "unknown key", yaml: "projections:\n  - name: a\n    hanlders: {T: SELECT 1}\n    handlers: {T: SELECT 1}\n",
			want: []string{`p.yaml:3: projection "a": hanlders: unknown key`}},
		{name: "duplicate names", yaml: "projections:\n  - name: a\n    handlers: {T: SELECT 1}\n  - name: a\n    handlers: {T: SELECT 1}\n",
			want: []string{`p.yaml:4: projection "a": name: duplicate projection name (first at line 2)`}},
		{name: "bad duration", yaml: "projections:\n  - name: a\n    batch: {interval: 10}\n    handlers: {T: SELECT 1}\n",
			want: []string{`p.yaml:3: projection "a": batch.interval: must be a positive duration`}},
		{name: "empty handlers", yaml: "projections:\n  - name: a\n    handlers: {}\n",
			want: []string{`p.yaml:3: projection "a": handlers: empty`}},
		{name: "unknown parameter", yaml: "projections:\n  - name: a\n    handlers:\n      T: |\n        SELECT @stream_id;\n        SELECT @data->>'x', @originator_id\n",
			want: []string{`p.yaml:6: projection "a": handlers."T": unknown parameter @originator_id (line 2)`}},
		{name: "SQL PostgreSQL cannot prepare", yaml: "projections:\n  - name: a\n    schema: |\n      CREATE TABLE IF NOT EXISTS a (n int);\n    handlers:\n      T: |\n        INSERT INTO a VALUES (1);\n        INSERT INTO a (m) VALUES (@revision)\n      U: UPDATE nowhere SET n = 1\n",
			want: []string{`p.yaml:8: projection "a": handlers."T": PostgreSQL cannot prepare statement 2 (line 2 of the SQL): column "m" of relation "a" does not exist`,
				`p.yaml:9: projection "a": handlers."U": PostgreSQL cannot prepare statement 1 (line 1 of the SQL): relation "nowhere" does not exist`}},
		{name: "batch SQL PostgreSQL cannot prepare", yaml: "projections:\n  - name: a\n    schema: CREATE TABLE IF NOT EXISTS a (n int);\n    topics: [T]\n    batch:\n      sql: |\n        INSERT INTO a SELECT revision FROM events;\n        INSERT INTO a (m) SELECT seq FROM events\n",
			want: []string{`p.yaml:8: projection "a": batch.sql: PostgreSQL cannot prepare statement 2 (line 2 of the SQL): column "m" of relation "a" does not exist`}},
		{name: "a parameter in batch SQL", yaml: "projections:\n  - name: a\n    topics: [T]\n    batch:\n      sql: INSERT INTO a VALUES (@revision)\n",
			want: []string{`p.yaml:5: projection "a": batch.sql: @revision: batch SQL takes no parameters; read the batch's events from the events relation instead`}},
		{name: "bad schema", yaml: "projections:\n  - name: a\n    schema: CREATE TABLE a (n integr);\n    handlers: {T: SELECT 1}\n",
			want: []string{`p.yaml:3: projection "a": schema: type "integr" does not exist`}},
		{name: "no KurrentDB URI", yaml: good, env: []string{"KURRENTDB_URI="}, want: []string{"KURRENTDB_URI: not set"}},
		{name: "bad KurrentDB URI", yaml: good, env: []string{"KURRENTDB_URI=http://nowhere"}, want: []string{"KURRENTDB_URI: kurrent: connection string"}},
		{name: "bad database URL", yaml: good, env: []string{"DATABASE_URL=postgres://[::1"}, want: []string{"DATABASE_URL: not a PostgreSQL URL or DSN"}},
		{name: "bad log format", yaml: good, env: []string{"PROJECTOR_LOG_FORMAT=xml"}, want: []string{`PROJECTOR_LOG_FORMAT: "xml" is not a log format`}},
		{name: "no config", env: []string{"PROJECTOR_CONFIG="}, want: []string{"PROJECTOR_CONFIG: no projections file; give --config FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR=127.0.0.1:0")
			if tc.yaml != "" {
				env = append(env, "PROJECTOR_CONFIG="+writeFile(t, "p.yaml", tc.yaml))
			}
			env = append(env, tc.env...)
			code, _, errOut := runProjector(t, env, "run")
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
	// Nothing was consumed: no tracking table was even created.
	var exists bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass('projector_tracking') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("tracking table exists after failed starts: %v %v", exists, err)
	}
	// Usage mistakes are exit code 2 too.
	for _, args := range [][]string{{"run", "extra"}, {"--bogus"}, {"frobnicate"}, {"wait", "a"}, {"wait", "a", "x"}} {
		if code, _, errOut := runProjector(t, testbin.Env(), args...); code != 2 {
			t.Errorf("projector %v: exit %d, want 2: %s", args, code, errOut)
		}
	}
}

// TestUnreachableAtStartIsRetried starts the daemon before KurrentDB exists and with a
// PostgreSQL that does not answer: it stays up, says why it is not ready, and catches up once
// KurrentDB appears.
func TestUnreachableAtStartIsRetried(t *testing.T) {
	t.Parallel()
	dbURL, pool := newDatabase(t)
	cfgFile := writeFile(t, "projections.yaml", bothProjections(t))

	// PostgreSQL unreachable: retried, logged, and SIGTERM still stops it cleanly.
	addr := testbin.FreeAddr(t)
	noDB := "postgres://postgres@" + testbin.FreeAddr(t) + "/x?connect_timeout=1"
	d := start(t, projectorBin, testbin.Env("KURRENTDB_URI=kurrentdb://"+testbin.FreeAddr(t)+"?tls=false", "DATABASE_URL="+noDB,
		"PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile), "run")
	healthy(t, d, addr)
	poll.Until(t, 20*time.Second, "two failed PostgreSQL connection attempts are logged", func() bool {
		return strings.Count(d.Output(), "connect to PostgreSQL: failed; retrying") >= 2
	})
	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(string(body), "not connected") {
		t.Errorf("/readyz while PostgreSQL is down: %d %s", code, body)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}

	// KurrentDB unreachable, then started.
	kAddr := testbin.FreeAddr(t)
	addr = testbin.FreeAddr(t)
	d = start(t, projectorBin, testbin.Env("KURRENTDB_URI=kurrentdb://"+kAddr+"?tls=false", "DATABASE_URL="+dbURL,
		"PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile), "run")
	healthy(t, d, addr)
	time.Sleep(2 * time.Second)
	if d.Exited() {
		t.Fatalf("exited while KurrentDB is down: %s", d.Output())
	}
	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(string(body), "KurrentDB") {
		t.Errorf("/readyz while KurrentDB is down: %d %s", code, body)
	}
	uri, _ := startEmulator(t, kAddr)
	last := appendDogs(t, kurrentClient(t, uri), 0, 20, 4)
	waitHTTP(t, addr, "dog_counts", last)
	waitHTTP(t, addr, "dogs", last)
	if got := viewDigest(t, pool); !strings.HasPrefix(got, "dogs=20,tricks=80 dogs=20 tricks=80") {
		t.Errorf("views = %s", got)
	}
	poll.Until(t, 20*time.Second, "/readyz answers 200", func() bool {
		code, _ := httpGet(t, "http://"+addr+"/readyz")
		return code == http.StatusOK
	})
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestDemo runs the README's first command's walkthrough, on the memory view and on
// PostgreSQL.
func TestDemo(t *testing.T) {
	t.Parallel()
	want := []string{
		"status page:        http://127.0.0.1:",
		"wrote   Dog.Registered (Fido), Dog.TrickAdded (roll over), Dog.TrickAdded (play dead)",
		"→ 200, reached",
		"counts  dogs=1 tricks=2",
		"wrote   Dog.TrickAdded (sit and stay)",
		"counts  dogs=1 tricks=3",
	}
	check := func(t *testing.T, out string) {
		t.Helper()
		at := 0
		for _, w := range want {
			i := strings.Index(out[at:], w)
			if i < 0 {
				t.Fatalf("demo output lacks %q (in order):\n%s", w, out)
			}
			at += i + len(w)
		}
	}
	t.Run("memory", func(t *testing.T) {
		code, out, errOut := runProjector(t, testbin.Env(), "demo", "--exit", "--http-addr", "127.0.0.1:0")
		if code != 0 {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
		check(t, out)
		if !strings.Contains(out, "view:               memory") {
			t.Errorf("not the memory view:\n%s", out)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dbURL, pool := newDatabase(t)
		for range 2 { // a second run starts afresh on the same database
			code, out, errOut := runProjector(t, testbin.Env("DATABASE_URL="+dbURL), "demo", "--exit", "--http-addr", "127.0.0.1:0")
			if code != 0 {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
			check(t, out)
		}
		var n int
		if err := pool.QueryRow(context.Background(), "SELECT n FROM dog_counts WHERE name = 'tricks'").Scan(&n); err != nil || n != 3 {
			t.Errorf("tricks in PostgreSQL = %d, %v", n, err)
		}
	})
	t.Run("serves until interrupted", func(t *testing.T) {
		addr := testbin.FreeAddr(t)
		d := start(t, projectorBin, testbin.Env("PROJECTOR_HTTP_ADDR="+addr), "demo")
		poll.Until(t, 30*time.Second, "the demo serves", func() bool { return strings.Contains(d.Output(), "Ctrl-C to stop") })
		if v := metricValue(t, addr, `projector_events_processed_total{projection="dog_counts"}`); v != 4 {
			t.Errorf("events processed = %v, want 4", v)
		}
		// The demo's daemon takes commands with the random token it prints, in the command
		// it prints: a reset rebuilds the view from the four events.
		m := regexp.MustCompile(`admin token \(random, for this run\): ([0-9a-f]{64})\nrebuild the view with it:\n  curl -X POST -H 'Authorization: Bearer ([0-9a-f]{64})' (http://\S+/v1/projections/dog_counts/reset)\n`).FindStringSubmatch(d.Output())
		if m == nil || m[1] != m[2] {
			t.Fatalf("the demo does not print its admin token and a command using it:\n%s", d.Output())
		}
		if code, body := postJSON(t, m[3], "", nil); code != 401 {
			t.Errorf("reset without the demo's token = %d %s", code, body)
		}
		if code, body := postJSON(t, m[3], m[1], nil); code != 200 {
			t.Errorf("reset with the demo's token = %d %s", code, body)
		}
		poll.Until(t, 30*time.Second, "the view is rebuilt", func() bool {
			return metricValue(t, addr, `projector_events_processed_total{projection="dog_counts"}`) == 8
		})
		if code := d.Signal(syscall.SIGINT, exitTimeout); code != 0 {
			t.Errorf("exit code %d", code)
		}
	})
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	if code, out, _ := runProjector(t, testbin.Env(), "version"); code != 0 || !strings.HasPrefix(out, "projector ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ := runProjector(t, testbin.Env(), "--help")
	for _, c := range []string{"run", "migrate", "status", "reset", "wait", "resume", "skip", "demo", "version"} {
		if code != 0 || !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help lacks %s: %s", c, out)
		}
	}
}

// TestMigrate runs the README's migrate command: Projector's tables and each projection's
// schema, idempotently; a file with SQL PostgreSQL cannot prepare is refused before anything
// is created.
func TestMigrate(t *testing.T) {
	t.Parallel()
	dbURL, pool := newDatabase(t)
	env := testbin.Env("DATABASE_URL=" + dbURL)
	bad := writeFile(t, "bad.yaml", "projections:\n  - name: a\n    handlers:\n      T: INSERT INTO missing VALUES (1)\n")
	if code, _, errOut := runProjector(t, env, "migrate", "--config", bad); code != 2 || !strings.Contains(errOut, `relation "missing" does not exist`) {
		t.Errorf("migrate with bad SQL: %d %s", code, errOut)
	}
	for range 2 {
		code, out, errOut := runProjector(t, env, "migrate", "--config", "../../examples/training_school.yaml")
		if code != 0 || !strings.Contains(out, "migrated: Projector's tables and 1 projection schema(s)") {
			t.Fatalf("migrate: %d %s %s", code, out, errOut)
		}
	}
	var tables string
	if err := pool.QueryRow(context.Background(), `SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != "dog_tricks,dogs,projector_dead_letters,projector_members,projector_migrations,projector_parked,projector_tracking,projector_tracking_generations,projector_versions" {
		t.Errorf("tables after migrate: %s", tables)
	}
	// Flags override the environment.
	if code, _, errOut := runProjector(t, testbin.Env("DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "PROJECTOR_LOG_FORMAT=xml"),
		"migrate", "--config", "../../examples/training_school.yaml", "--database-url", dbURL, "--log-format", "console"); code != 0 {
		t.Errorf("migrate with flags over a bad environment: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, testbin.Env(), "migrate", "--config", "../../examples/training_school.yaml"); code != 2 || !strings.Contains(errOut, "DATABASE_URL: not set") {
		t.Errorf("migrate without DATABASE_URL: %d %s", code, errOut)
	}
}

// TestKurrentDBOutage stops KurrentDB under a running daemon for longer than the client's
// discovery attempts last, then starts it again on its data: the daemon's source (kurrent.Dial)
// replaces its closed client, resumes, and projects every event exactly once.
func TestKurrentDBOutage(t *testing.T) {
	t.Parallel()
	dbURL, pool := newDatabase(t)
	kAddr, data := testbin.FreeAddr(t), t.TempDir()
	uri, em := startEmulator(t, kAddr, "--data", data)
	last := appendDogs(t, kurrentClient(t, uri), 0, 5, 2)
	addr := testbin.FreeAddr(t)
	d := start(t, projectorBin, testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_CONFIG="+writeFile(t, "p.yaml", bothProjections(t))), "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "dogs", last)

	if code := em.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("emulator exit code %d", code)
	}
	poll.Until(t, 30*time.Second, "the daemon reports the outage", func() bool {
		return len(logLines(d.Output(), "projection retrying")) >= 2
	})
	// Stay down well beyond the official client's discovery attempts (about a second), after
	// which a client closes itself for good: only a replaced client reaches the server again.
	time.Sleep(4 * time.Second)
	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(string(body), "KurrentDB") {
		t.Errorf("/readyz during the outage = %d %s", code, body)
	}
	startEmulator(t, kAddr, "--data", data)
	last = appendDogs(t, kurrentClient(t, uri), 5, 5, 2)
	waitHTTP(t, addr, "dogs", last)
	waitHTTP(t, addr, "dog_counts", last)
	if got := viewDigest(t, pool); !strings.HasPrefix(got, "dogs=10,tricks=20 dogs=10 tricks=20 rows=20") {
		t.Errorf("views = %s", got)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
