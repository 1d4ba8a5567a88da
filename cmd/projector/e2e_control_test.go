package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/views/postgres"
)

// e2eToken is the admin token of the daemons that take commands in these tests.
const e2eToken = "e2e-test-admin-token"

// postJSON posts to url, with token as a bearer token unless it is empty, and decodes a 200
// answer into into; it returns the status and body.
func postJSON(t *testing.T, url, token string, into any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// logLines returns the daemon's JSON log lines whose message is msg.
func logLines(out, msg string) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			lines = append(lines, m)
		}
	}
	return lines
}

// TestResumeAndSkip stops a projection (policy stop) on three poison events in turn and
// restarts it each time through the daemon's HTTP API and the CLI: a resume before the view is
// fixed stops again on the same event, a resume after the fix applies it, and a skip writes the
// event to the dead letters and goes on. The status shows the error meanwhile, the other
// projection never stops, and the views, dead letters, metrics and logs count exactly. The
// daemon has an admin token (from a file, as a mounted Secret): the commands refuse requests
// without it or with another, over HTTP and from the CLI, while the read endpoints stay open.
func TestResumeAndSkip(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	cfg := `projections:
  - name: names
    schema: |
      CREATE TABLE IF NOT EXISTS names (name text PRIMARY KEY,
        CONSTRAINT not_bad CHECK (name NOT LIKE 'bad-%'), CONSTRAINT not_worse CHECK (name NOT LIKE 'worse-%'));
    handlers:
      "__main__:Dog.Registered": INSERT INTO names VALUES (@data->>'name')
  - name: all_names
    schema: CREATE TABLE IF NOT EXISTS all_names (name text PRIMARY KEY);
    handlers:
      "__main__:Dog.Registered": INSERT INTO all_names VALUES (@data->>'name')
`
	register := func(name string) uint64 {
		t.Helper()
		pos, err := school.Register(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	var good []string
	for i := range 3 {
		good = append(good, fmt.Sprintf("dog-%d", i))
		register(good[len(good)-1])
	}
	bad1 := register("bad-1")
	good = append(good, "dog-3", "dog-4")
	register("dog-3")
	register("dog-4")
	worse2 := register("worse-2")
	good = append(good, "dog-5")
	register("dog-5")
	worse3 := register("worse-3")
	good = append(good, "dog-6")
	last := register("dog-6")

	addr := testbin.FreeAddr(t)
	const token = "e2e-admin-token-4f1c"
	noToken := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+writeFile(t, "p.yaml", cfg))
	env := append(append([]string(nil), noToken...), "PROJECTOR_ADMIN_TOKEN="+token)
	d := start(t, projectorBin, append(append([]string(nil), noToken...), "PROJECTOR_ADMIN_TOKEN_FILE="+writeFile(t, "token", token+"\n")), "run")
	healthy(t, d, addr)
	base := "http://" + addr + "/v1/projections/names"
	stoppedAt := func(pos uint64, times int) httpapi.ProjectionJSON {
		t.Helper()
		var p httpapi.ProjectionJSON
		poll.Until(t, 30*time.Second, fmt.Sprintf("names is stopped on the event at %d (stop %d)", pos, times), func() bool {
			p = httpapi.ProjectionJSON{}
			getJSON(t, base, &p)
			return p.State == "stopped" && p.Failed != nil && p.Failed.Position.Commit == pos && len(logLines(d.Output(), "projection stopped")) == times
		})
		return p
	}

	// Stopped on bad-1: the status shows the event and the error, over HTTP and in `status`.
	p := stoppedAt(bad1, 1)
	if !strings.Contains(p.Failed.Error, `violates check constraint "not_bad"`) || !strings.Contains(p.Error, `violates check constraint "not_bad"`) ||
		p.Failed.Type != trainingschool.TopicDogRegistered || p.Failed.Stream != trainingschool.DogID("bad-1").String() || p.Position >= bad1 {
		t.Errorf("status of the stopped projection = %+v (failed %+v)", p, p.Failed)
	}
	code, out, errOut := runProjector(t, env, "status")
	if code != 0 || !strings.Contains(out, "names stopped: on event ") || !strings.Contains(out, `violates check constraint "not_bad"`) ||
		!strings.Contains(out, "`projector resume names` retries the event") {
		t.Errorf("status: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runProjector(t, env, "status", "--json")
	var st httpapi.ListJSON
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Projections[0].Failed == nil ||
		!strings.Contains(st.Projections[0].Error, "not_bad") || st.Projections[1].Error != "" || st.Projections[1].State == "stopped" {
		t.Errorf("status --json: %d %v %s", code, err, out)
	}
	// The other projection goes on.
	waitHTTP(t, addr, "all_names", last)

	// Without the admin token, or with another, the commands are refused before they reach the
	// projection.
	for _, tok := range []string{"", "e2e-admin-token-4f1d", token + "x"} {
		if code, body := postJSON(t, base+"/skip", tok, nil); code != 401 || !strings.Contains(body, "admin token") {
			t.Errorf("skip with token %q = %d %s, want 401", tok, code, body)
		}
	}
	if code, _, errOut := runProjector(t, noToken, "skip", "names"); code != 1 || !strings.Contains(errOut, "requires the admin token: give it with --admin-token") {
		t.Errorf("CLI skip without the token: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, env, "skip", "names", "--admin-token", "guess"); code != 1 || !strings.Contains(errOut, "refused the admin token given") {
		t.Errorf("CLI skip with a wrong token: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, env, "resume", "names", "--admin-token-file", writeFile(t, "wrong", "guess")); code != 2 ||
		!strings.Contains(errOut, "PROJECTOR_ADMIN_TOKEN: set together with PROJECTOR_ADMIN_TOKEN_FILE") {
		t.Errorf("CLI resume with a token and a token file: %d %s", code, errOut)
	}
	if n := strings.Count(d.Output(), "/reset are disabled"); n != 0 || !strings.Contains(d.Output(), `"commands":"enabled: they require the admin token"`) || strings.Contains(d.Output(), token) {
		t.Errorf("the daemon with an admin token said %d times that the commands are disabled, or not that they are enabled, or showed the token:\n%s", n, d.Output())
	}
	stoppedAt(bad1, 1) // still stopped on bad-1: nothing was skipped

	// Commands a stopped projection does not take, or that go nowhere.
	if code, body := postJSON(t, "http://"+addr+"/v1/projections/all_names/resume", token, nil); code != 409 || !strings.Contains(body, "not stopped") {
		t.Errorf("resume of a live projection = %d %s", code, body)
	}
	if code, _, errOut := runProjector(t, env, "skip", "all_names"); code != 1 || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, "not stopped") {
		t.Errorf("CLI skip of a live projection: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, env, "resume", "nothing"); code != 1 || !strings.Contains(errOut, "has no such projection") {
		t.Errorf("CLI resume of an unknown projection: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, env, "resume", "names", "--server", "http://"+testbin.FreeAddr(t)); code != 1 || !strings.Contains(errOut, "cannot reach the projector daemon at") {
		t.Errorf("CLI resume without a daemon: %d %s", code, errOut)
	}

	// Resume over HTTP before the view is fixed: the event fails again and the projection stops
	// again on it (the answer may already show that).
	var after httpapi.ProjectionJSON
	if code, body := postJSON(t, base+"/resume", token, &after); code != 200 || after.Name != "names" {
		t.Errorf("resume = %d %s", code, body)
	}
	stoppedAt(bad1, 2)

	// Fix the view; resume from the CLI applies the event, then worse-2 stops it.
	if _, err := pool.Exec(ctx, `ALTER TABLE names DROP CONSTRAINT not_bad`); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runProjector(t, env, "resume", "names"); code != 0 || !strings.Contains(out, "resume names: accepted; it is now ") {
		t.Errorf("CLI resume: %d %s %s", code, out, errOut)
	}
	stoppedAt(worse2, 3)

	// Skip worse-2 from the CLI (the token from a flag), then worse-3 over HTTP.
	if code, out, errOut := runProjector(t, noToken, "skip", "names", "--admin-token", token); code != 0 || !strings.Contains(out, "skip names: accepted") {
		t.Errorf("CLI skip: %d %s %s", code, out, errOut)
	}
	stoppedAt(worse3, 4)
	if code, body := postJSON(t, base+"/skip", token, &after); code != 200 || after.State == "stopped" {
		t.Errorf("skip = %d %s", code, body)
	}
	waitHTTP(t, addr, "names", last)

	// Exact counts: every good event and the fixed one once, the skipped ones as dead letters.
	var names string
	if err := pool.QueryRow(ctx, `SELECT string_agg(name, ',' ORDER BY name) FROM names`).Scan(&names); err != nil {
		t.Fatal(err)
	}
	if want := "bad-1," + strings.Join(good, ","); names != want {
		t.Errorf("names = %s, want %s", names, want)
	}
	dl, err := postgres.ListDeadLetters(ctx, pool, "names", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 2 || dl[0].Event.Position.Commit != worse2 || dl[1].Event.Position.Commit != worse3 ||
		!strings.Contains(dl[0].Error, "not_worse") || dl[0].FailedAt.IsZero() {
		t.Errorf("dead letters = %+v", dl)
	}
	poll.Until(t, 10*time.Second, "the metrics count", func() bool {
		return metricValue(t, addr, `projector_events_processed_total{projection="names"}`) == float64(len(good)+1) &&
			metricValue(t, addr, `projector_events_dead_lettered_total{projection="names"}`) == 2
	})
	for series, want := range map[string]float64{
		`projector_errors_total{kind="handler",projection="names"}`:     4, // bad-1 twice, worse-2, worse-3
		`projector_errors_total{kind="handler",projection="all_names"}`: 0,
		`projector_events_processed_total{projection="all_names"}`:      float64(len(good) + 3),
		`projector_leader{projection="names"}`:                          1,
	} {
		if v := metricValue(t, addr, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}

	// One log line per change, with the poison event on the stops.
	logs := d.Output()
	stops := logLines(logs, "projection stopped")
	for i, want := range []uint64{bad1, bad1, worse2, worse3} {
		if l := stops[i]; l["projection"] != "names" || l["event_position"] != float64(want) || l["event_type"] != trainingschool.TopicDogRegistered ||
			l["stream"] == nil || !strings.Contains(fmt.Sprint(l["event_error"]), "violates check constraint") || l["position"] == nil {
			t.Errorf("stop line %d = %v, want the event at %d", i, l, want)
		}
	}
	for msg, want := range map[string]int{
		"projection resumed": 2, "projection resumed past its poison event (skip)": 2, "event dead-lettered and skipped": 2,
	} {
		if n := len(logLines(logs, msg)); n != want {
			t.Errorf("%d %q lines, want %d", n, msg, want)
		}
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestDrainOnSIGTERM stops the daemon by SIGTERM while a slow batch is in flight (each event
// sleeps in PostgreSQL, so a batch of 60 takes about 3 seconds): with a drain timeout longer
// than the batch, the batch commits and the daemon exits 0; with a drain timeout shorter than
// the batch, it is rolled back and the daemon exits 0 soon after the timeout, long before the
// batch would have finished. Either way the view holds exactly the events its tracking row
// covers: no half-applied batch.
func TestDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	var positions []uint64
	for i := range 400 {
		pos, err := school.Register(ctx, fmt.Sprintf("dog-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, pos)
	}
	cfg := writeFile(t, "p.yaml", `projections:
  - name: slow
    batch: {size: 60, interval: 1s}
    schema: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY);
    handlers:
      "__main__:Dog.Registered": |
        INSERT INTO seen VALUES (@commit_position);
        SELECT pg_sleep(0.05);
`)
	tracked := func() uint64 {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass('projector_tracking') IS NOT NULL`).Scan(&exists); err != nil || !exists {
			return 0 // not migrated yet
		}
		var c int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(max(commit_position), 0) FROM projector_tracking WHERE projection = 'slow'`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return uint64(c)
	}
	// consistent checks that the view holds exactly the events up to the tracked position.
	consistent := func(what string) uint64 {
		t.Helper()
		at := tracked()
		var want int
		for _, p := range positions {
			if p <= at {
				want++
			}
		}
		var n int
		var highest int64
		if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(max(position), 0) FROM seen`).Scan(&n, &highest); err != nil {
			t.Fatal(err)
		}
		if n != want || uint64(highest) > at {
			t.Errorf("%s: the view holds %d events up to %d, but tracking is at %d (%d events): a half-applied batch", what, n, highest, at, want)
		}
		return at
	}
	// inFlight reports whether a session opened since started runs a batch: a session of an
	// earlier daemon may still be seen until PostgreSQL notices it is gone.
	inFlight := func(started time.Time) bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid() AND backend_start >= $1`, started).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	// stopMidBatch stops d, started at started, once it has committed past from and has a
	// batch in flight.
	stopMidBatch := func(d *testbin.Proc, started time.Time, from uint64) (uint64, time.Duration) {
		t.Helper()
		poll.Until(t, 60*time.Second, "a batch is in flight after a commit", func() bool { return tracked() > from && inFlight(started) })
		before := tracked()
		sent := time.Now()
		if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
			t.Errorf("exit code %d on SIGTERM, want 0", code)
		}
		return before, time.Since(sent)
	}
	env := func(addr string, extra ...string) []string {
		return testbin.Env(append([]string{"KURRENTDB_URI=" + uri, "DATABASE_URL=" + dbURL, "PROJECTOR_HTTP_ADDR=" + addr, "PROJECTOR_CONFIG=" + cfg}, extra...)...)
	}

	// Drain timeout (from the environment) longer than the batch: it commits.
	addr := testbin.FreeAddr(t)
	started := time.Now()
	d := start(t, projectorBin, env(addr, "PROJECTOR_DRAIN_TIMEOUT=20s"), "run")
	healthy(t, d, addr)
	// Without an admin token every command is refused, from the CLI and over HTTP, token or not.
	if code, _, errOut := runProjector(t, env(addr, "PROJECTOR_ADMIN_TOKEN=guess"), "skip", "slow"); code != 1 || !strings.Contains(errOut, "commands are disabled") {
		t.Errorf("CLI skip of a daemon without an admin token: %d %s", code, errOut)
	}
	for _, tok := range []string{"", "guess"} {
		if code, body := postJSON(t, "http://"+addr+"/v1/projections/slow/reset", tok, nil); code != 403 || !strings.Contains(body, "set PROJECTOR_ADMIN_TOKEN") {
			t.Errorf("reset of a daemon without an admin token, with token %q = %d %s, want 403", tok, code, body)
		}
	}
	before, took := stopMidBatch(d, started, 0)
	after := consistent("drained")
	if after <= before {
		t.Errorf("the batch in flight was not committed on SIGTERM with a 20s drain timeout: tracking %d before, %d after", before, after)
	}
	if n := strings.Count(d.Output(), "/reset are disabled: set PROJECTOR_ADMIN_TOKEN or PROJECTOR_ADMIN_TOKEN_FILE"); n != 1 {
		t.Errorf("the daemon without an admin token said %d times that the commands are disabled, want once", n)
	}
	if !strings.Contains(d.Output(), `"drain_timeout":20`) {
		t.Errorf("the shutdown line does not give the drain timeout:\n%s", d.Output())
	}
	t.Logf("drained: exit 0 %v after SIGTERM, tracking %d -> %d", took, before, after)

	// Drain timeout (a flag, over the environment) shorter than the batch: it is rolled back.
	addr, started = testbin.FreeAddr(t), time.Now()
	d = start(t, projectorBin, env(addr, "PROJECTOR_DRAIN_TIMEOUT=20s"), "run", "--drain-timeout", "200ms")
	healthy(t, d, addr)
	before, took = stopMidBatch(d, started, after)
	after = consistent("rolled back")
	if took > 2200*time.Millisecond {
		t.Errorf("exit %v after SIGTERM with a 200ms drain timeout and a 3s batch in flight: not rolled back at the timeout", took)
	}
	if !strings.Contains(d.Output(), "rolled back after the drain timeout") {
		t.Errorf("no log line about the rolled-back batch:\n%s", d.Output())
	}
	t.Logf("rolled back: exit 0 %v after SIGTERM, tracking %d -> %d", took, before, after)

	// A bad drain timeout is refused at start, naming the variable.
	if code, _, errOut := runProjector(t, env(testbin.FreeAddr(t), "PROJECTOR_DRAIN_TIMEOUT=30"), "run"); code != 2 || !strings.Contains(errOut, `PROJECTOR_DRAIN_TIMEOUT: "30" is not a duration`) {
		t.Errorf("bad drain timeout: exit %d %s", code, errOut)
	}
}
