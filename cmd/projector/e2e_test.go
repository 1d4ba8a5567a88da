package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// bothProjections is examples/dog_counts.yaml followed by the projections of
// examples/training_school.yaml: two projections over the same events.
func bothProjections(t *testing.T) string {
	t.Helper()
	a, err := os.ReadFile(filepath.Join("..", "..", "examples", "dog_counts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "training_school.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "projections:\n")
	if !ok {
		t.Fatal("training_school.yaml has no projections list")
	}
	return string(a) + rest
}

// appendDogs registers dogs first..first+n-1, each with tricks tricks, one append per dog
// (as eventsourcing saves an aggregate's pending events together), plus one unrelated event
// per dog that the projections filter out. It returns the last commit position.
func appendDogs(t *testing.T, c *kurrentdb.Client, first, n, tricks int) uint64 {
	t.Helper()
	ctx := context.Background()
	school := trainingschool.NewSchool(c)
	var last uint64
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("dog-%05d", i)
		ts := make([]string, tricks)
		for j := range ts {
			ts[j] = fmt.Sprintf("trick %d", j)
		}
		pos, err := school.RegisterWithTricks(ctx, name, ts...)
		if err != nil {
			t.Fatalf("append dog %s: %v", name, err)
		}
		if _, err := c.AppendToStream(ctx, "cat-"+name, kurrentdb.AppendToStreamOptions{},
			kurrentdb.EventData{EventID: uuid.New(), EventType: "__main__:Cat.Registered", ContentType: kurrentdb.ContentTypeBinary,
				Data: []byte(`{"name":"` + name + `"}`)}); err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	return last
}

// viewDigest summarises both views: counts and a digest of every row.
func viewDigest(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT
		(SELECT coalesce(string_agg(name || '=' || n, ',' ORDER BY name), '') FROM dog_counts) || ' dogs=' ||
		(SELECT count(*) FROM dogs) || ' tricks=' || (SELECT coalesce(sum(tricks), 0) FROM dogs) || ' rows=' ||
		(SELECT count(*) FROM dog_tricks) || ' digest=' ||
		(SELECT coalesce(md5(string_agg(id::text || name || tricks, ',' ORDER BY id)), '') FROM dogs) ||
		(SELECT coalesce(md5(string_agg(dog_id::text || revision || trick, ',' ORDER BY dog_id, revision)), '') FROM dog_tricks)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitHTTP(t *testing.T, addr, projection string, position uint64) httpapi.WaitJSON {
	t.Helper()
	var w httpapi.WaitJSON
	code := getJSON(t, fmt.Sprintf("http://%s/v1/projections/%s/wait?position=%d&timeout=60s", addr, projection, position), &w)
	if code != 200 || !w.Done || w.Position < position {
		t.Fatalf("wait for %s at %d: %d %+v", projection, position, code, w)
	}
	return w
}

func metricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	_, b := httpGet(t, "http://"+addr+"/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no series %s in /metrics", series)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDeclarativeProjectionEndToEnd projects a few thousand events written the way the Python
// eventsourcing-kurrentdb package writes them, through the real binaries, and exercises the HTTP
// API, the metrics, the status, wait and reset commands, a graceful stop and a rebuild.
func TestDeclarativeProjectionEndToEnd(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	const dogs, tricks = 200, 14 // 3000 events of the projections' types, 200 filtered out
	last := appendDogs(t, client, 0, dogs, tricks)

	cfgFile := writeFile(t, "projections.yaml", bothProjections(t))
	addr, profiles := testbin.FreeAddr(t), testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile,
		"PROJECTOR_ADMIN_TOKEN="+e2eToken, "PROJECTOR_PPROF_ADDR="+profiles)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	if code, b := httpGet(t, "http://"+profiles+"/debug/pprof/heap?debug=1"); code != 200 || !strings.HasPrefix(string(b), "heap profile:") {
		t.Errorf("PROJECTOR_PPROF_ADDR: GET /debug/pprof/heap = %d %.100q, want the heap profile", code, b)
	}
	if code, _ := httpGet(t, "http://"+addr+"/debug/pprof/heap?debug=1"); code != 404 {
		t.Errorf("the API listener answers /debug/pprof/heap with %d, want 404 (profiles only on their own listener)", code)
	}

	waitHTTP(t, addr, "dog_counts", last)
	waitHTTP(t, addr, "dogs", last)
	want := fmt.Sprintf("dogs=%d,tricks=%d dogs=%d tricks=%d rows=%d", dogs, dogs*tricks, dogs, dogs*tricks, dogs*tricks)
	got := viewDigest(t, pool)
	if !strings.HasPrefix(got, want) {
		t.Fatalf("views = %s, want %s", got, want)
	}

	// /v1/projections and /readyz once both are live.
	poll.Until(t, 20*time.Second, "both projections are live and /readyz answers 200", func() bool {
		var l httpapi.ListJSON
		getJSON(t, "http://"+addr+"/v1/projections", &l)
		for _, p := range l.Projections {
			if p.State != "live" {
				return false
			}
		}
		code, _ := httpGet(t, "http://"+addr+"/readyz")
		return code == 200
	})
	var l httpapi.ListJSON
	getJSON(t, "http://"+addr+"/v1/projections", &l)
	if len(l.Projections) != 2 || l.Head == nil || *l.Head < last {
		t.Fatalf("/v1/projections = %+v", l)
	}
	for _, p := range l.Projections {
		if !p.Leader || p.Position < last || p.Lag == nil || *p.Lag != 0 || p.LagSeconds != 0 || !p.CaughtUp {
			t.Errorf("projection %+v", p)
		}
	}

	// Metrics, with the names dashboards rely on.
	if v := metricValue(t, addr, `projector_events_processed_total{projection="dog_counts"}`); v != dogs*(tricks+1) {
		t.Errorf("events processed = %v, want %d", v, dogs*(tricks+1))
	}
	for series, want := range map[string]float64{
		`projector_caught_up{projection="dogs"}`:                          1,
		`projector_leader{projection="dogs"}`:                             1,
		`projector_lag_seconds{projection="dogs"}`:                        0,
		`projector_lag_positions{projection="dogs"}`:                      0,
		`projector_events_dead_lettered_total{projection="dogs"}`:         0,
		`projector_errors_total{kind="handler",projection="dogs"}`:        0,
		`projector_subscription_restarts_total{projection="dogs"}`:        0,
		`projector_batch_events_sum{projection="dogs"}`:                   dogs * (tricks + 1),
		`projector_wait_duration_seconds_count{projection="dog_counts"}`:  1,
		`projector_batch_duration_seconds_count{projection="dog_counts"}`: metricValue(t, addr, `projector_batches_total{projection="dog_counts"}`),
	} {
		if v := metricValue(t, addr, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if v := metricValue(t, addr, `projector_position{projection="dogs"}`); v < float64(last) {
		t.Errorf("position %v < %d", v, last)
	}
	if v := metricValue(t, addr, `projector_head_position`); v < float64(last) {
		t.Errorf("head %v < %d", v, last)
	}
	if v := metricValue(t, addr, `projector_last_progress_timestamp_seconds{projection="dogs"}`); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last progress %v", v)
	}
	metricValue(t, addr, "go_goroutines")
	metricValue(t, addr, "process_cpu_seconds_total")

	// The wait endpoint's other answers.
	var w httpapi.WaitJSON
	if code := getJSON(t, fmt.Sprintf("http://%s/v1/projections/dogs/wait?position=%d&timeout=200ms", addr, last+1_000_000), &w); code != 504 || w.Done || w.Position < last {
		t.Errorf("wait past the head: %d %+v", code, w)
	}
	if code, _ := httpGet(t, "http://"+addr+"/v1/projections/cats/wait?position=1"); code != 404 {
		t.Errorf("unknown projection: %d", code)
	}
	if code, _ := httpGet(t, "http://"+addr+"/v1/projections/dogs/wait?position=x"); code != 400 {
		t.Errorf("bad position: %d", code)
	}

	// A live event, waited for through the wait API.
	pos, err := trainingschool.NewSchool(client).AddTrick(context.Background(), "dog-00000", "sit and stay")
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, addr, "dogs", pos)
	waitHTTP(t, addr, "dog_counts", pos)
	want = fmt.Sprintf("dogs=%d,tricks=%d dogs=%d tricks=%d", dogs, dogs*tricks+1, dogs, dogs*tricks+1)
	if got := viewDigest(t, pool); !strings.HasPrefix(got, want) {
		t.Fatalf("after a live event: %s, want %s", got, want)
	}

	// The wait command reads PostgreSQL: exit 0 when processed, 1 on timeout.
	if code, out, errOut := runProjector(t, env, "wait", "dogs", strconv.FormatUint(pos, 10)); code != 0 || !strings.Contains(out, fmt.Sprintf("dogs processed %d", pos)) {
		t.Errorf("wait: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runProjector(t, env, "wait", "dogs", strconv.FormatUint(pos+1_000_000, 10), "--timeout", "300ms"); code != 1 || !strings.Contains(errOut, "timed out after 300ms") {
		t.Errorf("wait timeout: %d %s", code, errOut)
	}
	if code, _, errOut := runProjector(t, env, "wait", "cats", "1"); code != 2 || !strings.Contains(errOut, `no projection "cats"`) {
		t.Errorf("wait unknown: %d %s", code, errOut)
	}

	// status, as a table and as JSON.
	code, out, errOut := runProjector(t, env, "status")
	if code != 0 || !regexp.MustCompile(`(?m)^dogs\s+\d+\s+\d+\s+0\s+live\s+true\s+\S+-\d+$`).MatchString(out) {
		t.Errorf("status: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runProjector(t, env, "status", "--json")
	var st httpapi.ListJSON
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Projections) != 2 || st.Projections[1].Name != "dogs" || st.Projections[1].Position < pos {
		t.Errorf("status --json: %d %v %s", code, err, out)
	}

	// reset while the daemon runs: the daemon resets online and rebuilds the same view, and
	// keeps running.
	online := viewDigest(t, pool)
	code, out, errOut = runProjector(t, env, "reset", "dogs")
	if code != 0 || !strings.Contains(out, "reset dogs online") {
		t.Fatalf("online reset: %d %s %s", code, out, errOut)
	}
	waitHTTP(t, addr, "dogs", pos)
	if after := viewDigest(t, pool); after != online {
		t.Errorf("view rebuilt online differs:\n before %s\n after  %s", online, after)
	}
	if code, _ := httpGet(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("/healthz after the online reset = %d", code)
	}
	if code, body := postJSON(t, "http://"+addr+"/v1/projections/cats/reset", e2eToken, nil); code != 404 {
		t.Errorf("reset of an unknown projection = %d %s", code, body)
	}

	// SIGTERM: graceful, exit 0.
	before := viewDigest(t, pool)
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	if !strings.Contains(d.Output(), `"msg":"stopped"`) {
		t.Errorf("no stopped line in the log")
	}
	// status without the daemon: positions from PostgreSQL, state unknown.
	code, out, _ = runProjector(t, env, "status")
	if code != 0 || !regexp.MustCompile(`(?m)^dogs\s+\d+\s+\d+\s+0\s+unknown\s+-\s+-$`).MatchString(out) {
		t.Errorf("status without a daemon: %d\n%s", code, out)
	}

	// reset empties the view and rewinds; a restart rebuilds the same view.
	code, out, errOut = runProjector(t, env, "reset", "dogs")
	if code != 0 || !strings.Contains(out, "reset dogs") {
		t.Fatalf("reset: %d %s %s", code, out, errOut)
	}
	var n int
	_ = pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM dogs) + (SELECT count(*) FROM dog_tricks)").Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows left after reset", n)
	}
	d2 := start(t, projectorBin, env, "run")
	healthy(t, d2, addr)
	waitHTTP(t, addr, "dogs", pos)
	if after := viewDigest(t, pool); after != before {
		t.Errorf("rebuilt view differs:\n before %s\n after  %s", before, after)
	}
	if code := d2.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}
