package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/logging"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the logged lines whose message is msg.
func (s *syncBuffer) lines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// flakyStore is the memory store whose next Apply calls fail as a dropped PostgreSQL
// connection would.
type flakyStore struct {
	*memory.Store
	fail atomic.Int32
}

func (f *flakyStore) Apply(ctx context.Context, name string, prev, next tracking.State, fn func(context.Context, *memory.Tx) error) error {
	if f.fail.Add(-1) >= 0 {
		return fmt.Errorf("connection reset by peer: %w", projection.ErrTransient)
	}
	return f.Store.Apply(ctx, name, prev, next, fn)
}

func metric(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no series %s in /metrics", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// adminToken is the admin token of the daemons that take commands in these tests.
const adminToken = "daemon-test-token"

// post posts to url with the admin token adminToken.
func post(t *testing.T, url string) (int, httpapi.ProjectionJSON, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	var p httpapi.ProjectionJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, p, b.String()
}

// TestFaultsCommandsLogsAndMetrics runs the daemon on the real runner over an in-memory log,
// store and leader, and drives a projection through every fault the runtime reports and through
// poison events resumed and skipped over the HTTP API: each fault kind is counted in
// projector_errors_total, restarts and leadership in their metrics, and each state change is one
// log line carrying the projection and its position.
func TestFaultsCommandsLogsAndMetrics(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out syncBuffer
	log, err := logging.New(&out, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	src := projectiontest.NewLog()
	store := &flakyStore{Store: memory.New()}
	leader := projectiontest.NewLeader()
	var fixed atomic.Bool
	p := projection.New[*memory.Tx]("p").On("T", func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		switch string(e.Data) {
		case "poison":
			if !fixed.Load() {
				return errors.New("cannot handle this event")
			}
		case "worse":
			return errors.New("cannot handle this event either")
		}
		tx.Add("n", 1)
		return nil
	})

	d, err := daemon.Start(log, "127.0.0.1:0", []string{"p"}, daemon.Options{AdminToken: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.Addr()
	if code, _, body := post(t, base+"/v1/projections/p/resume"); code != 503 || !strings.Contains(body, "still connecting") {
		t.Errorf("resume before Run = %d %s", code, body)
	}
	leader.FailAcquire(errors.New("lock connection refused")) // leadership
	src.FailSubscribe(errors.New("KurrentDB unavailable"))    // source
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, d, daemon.Config[*memory.Tx]{
			Source: src, Header: src, Store: store, Leader: leader,
			Projections:   []daemon.Projection[*memory.Tx]{{Projection: p}},
			RunnerOptions: projection.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, CheckpointEvery: time.Millisecond},
		})
	}()
	status := func() projection.Status {
		var s httpapi.ProjectionJSON
		_, body := get(t, base+"/v1/projections/p")
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		return projection.Status{Name: s.Name, State: s.State, Leader: s.Leader, Position: s.Position, Failed: s.Failed, Error: s.Error}
	}
	wait := func(pos uint64) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if _, err := store.Wait(wctx, "p", pos); err != nil {
			t.Fatalf("wait for %d: %v", pos, err)
		}
	}
	last := src.Append("s", "T", []byte("ok")).Position.Commit
	wait(last)
	poll.Until(t, 10*time.Second, "the leader gauge", func() bool { return metric(t, base, `projector_leader{projection="p"}`) == 1 })

	// store: a failing commit, retried.
	store.fail.Store(1)
	last = src.Append("s", "T", []byte("ok")).Position.Commit
	wait(last)
	// subscription restart: a dropped subscription.
	src.Drop(errors.New("connection cut"))
	last = src.Append("s", "T", []byte("ok")).Position.Commit
	wait(last)
	// conflict: tracking moved under the leader (a former leader committing late).
	cur, _, _ := store.Load(ctx, "p")
	if err := store.Store.Apply(ctx, "p", cur, tracking.State{Last: cur.Last, Checkpoint: cur.Last.Commit + 1}, func(context.Context, *memory.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	last = src.Append("s", "T", []byte("ok")).Position.Commit
	wait(last)
	// leadership lost, and taken again.
	leader.Revoke("p", errors.New("lock connection killed"))
	last = src.Append("s", "T", []byte("ok")).Position.Commit
	poll.Until(t, 10*time.Second, "leadership is taken again", func() bool { return leader.Grants("p") >= 2 })
	wait(last)

	// handler: a poison event stops the projection; the status shows it.
	poison := src.Append("s", "T", []byte("poison"))
	poll.Until(t, 10*time.Second, "the projection stops", func() bool { return status().State == projection.StateStopped })
	st := status()
	if st.Failed == nil || st.Failed.EventID != poison.ID || !strings.Contains(st.Error, "cannot handle this event") {
		t.Errorf("stopped status = %+v", st)
	}
	if code, _, body := post(t, base+"/v1/projections/p/skip?now=1"); code != 400 {
		t.Errorf("skip with a parameter = %d %s", code, body)
	}
	// Resume before the fix: it stops again on the same event (possibly before the answer is
	// written, which then shows it stopped again).
	if code, after, body := post(t, base+"/v1/projections/p/resume"); code != 200 || after.Name != "p" {
		t.Errorf("resume = %d %s", code, body)
	}
	poll.Until(t, 10*time.Second, "the projection stops again", func() bool { return len(out.lines("projection stopped")) == 2 })
	fixed.Store(true)
	// The answer waits for the change the command causes, so it shows the projection restarted.
	if code, after, body := post(t, base+"/v1/projections/p/resume"); code != 200 || after.State == projection.StateStopped {
		t.Errorf("resume after the fix = %d %s", code, body)
	}
	wait(poison.Position.Commit)
	worse := src.Append("s", "T", []byte("worse"))
	poll.Until(t, 10*time.Second, "the projection stops on the next poison", func() bool {
		s := status()
		return s.State == projection.StateStopped && s.Failed != nil && s.Failed.EventID == worse.ID
	})
	if code, _, body := post(t, base+"/v1/projections/p/skip"); code != 200 {
		t.Errorf("skip = %d %s", code, body)
	}
	last = src.Append("s", "T", []byte("ok")).Position.Commit
	wait(last)
	if code, _, body := post(t, base+"/v1/projections/p/skip"); code != 409 || !strings.Contains(body, "not stopped") {
		t.Errorf("skip of a live projection = %d %s", code, body)
	}
	if code, _, body := post(t, base+"/v1/projections/q/resume"); code != 404 {
		t.Errorf("resume of an unknown projection = %d %s", code, body)
	}

	if n, dl := store.Int("n"), store.DeadLetters(); n != 7 || len(dl) != 1 || dl[0].Event.ID != worse.ID {
		t.Errorf("view n = %d, dead letters %+v; want 7 and the second poison event", n, dl)
	}
	poll.Until(t, 10*time.Second, "the counters", func() bool {
		return metric(t, base, `projector_events_processed_total{projection="p"}`) == 7
	})
	for series, want := range map[string]float64{
		`projector_events_dead_lettered_total{projection="p"}`:   1,
		`projector_subscription_restarts_total{projection="p"}`:  1,
		`projector_errors_total{kind="source",projection="p"}`:   1,
		`projector_errors_total{kind="store",projection="p"}`:    1,
		`projector_errors_total{kind="conflict",projection="p"}`: 1,
		`projector_errors_total{kind="handler",projection="p"}`:  3, // poison twice, worse once
		`projector_leader{projection="p"}`:                       1,
	} {
		if v := metric(t, base, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if v := metric(t, base, `projector_errors_total{kind="leadership",projection="p"}`); v != 2 {
		t.Errorf("leadership errors = %v, want 2 (a failed acquire and a lost lease)", v)
	}

	for msg, want := range map[string]int{
		"projection stopped": 3, "projection resumed": 2, "projection resumed past its poison event (skip)": 1,
		"leadership lost": 1, "event dead-lettered and skipped": 1,
	} {
		if n := len(out.lines(msg)); n != want {
			t.Errorf("%d %q lines, want %d", n, msg, want)
		}
	}
	for msg, least := range map[string]int{"projection retrying": 4, "projection recovered": 4, "leadership acquired": 2, "projection on standby": 1} {
		if n := len(out.lines(msg)); n < least {
			t.Errorf("%d %q lines, want at least %d", n, msg, least)
		}
	}
	for _, msg := range []string{"projection stopped", "projection resumed", "projection retrying", "leadership lost", "leadership acquired", "projection recovered"} {
		for _, l := range out.lines(msg) {
			if l["projection"] != "p" || l["position"] == nil || l["from"] == nil || l["to"] == nil {
				t.Errorf("%q line without projection, position, from and to: %v", msg, l)
			}
		}
	}
	if l := out.lines("projection stopped")[2]; l["event_id"] != worse.ID || l["event_position"] != float64(worse.Position.Commit) ||
		l["event_type"] != "T" || l["stream"] != "s" || l["event_error"] != "cannot handle this event either" {
		t.Errorf("stop line = %v", l)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz after shutdown = %d %s", code, body)
	}
	if code, _, body := post(t, base+"/v1/projections/p/resume"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("resume after shutdown = %d %s", code, body)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := d.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if t.Failed() {
		t.Logf("log:\n%s", out.String())
	}
}

const commandsDisabled = "the command endpoints POST /v1/projections/{name}/resume, /skip and /reset are disabled: set PROJECTOR_ADMIN_TOKEN or PROJECTOR_ADMIN_TOKEN_FILE to enable them with a bearer token"

// TestStartWithoutAdminToken starts the daemon without an admin token: every command answers
// 403 (before the daemon is even running its projections), the read endpoints stay open, and
// the start says that the commands are disabled and how to enable them.
func TestStartWithoutAdminToken(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out syncBuffer
	log, err := logging.New(&out, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(log, "127.0.0.1:0", []string{"p"}, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Shutdown(context.Background()) }()
	base := "http://" + d.Addr()
	for _, verb := range []string{"resume", "skip", "reset"} {
		if code, _, body := post(t, base+"/v1/projections/p/"+verb); code != http.StatusForbidden || !strings.Contains(body, "commands are disabled") {
			t.Errorf("%s without an admin token = %d %s, want 403", verb, code, body)
		}
	}
	if code, body := get(t, base+"/v1/projections"); code != 200 || !strings.Contains(body, `"name": "p"`) {
		t.Errorf("GET /v1/projections without an admin token = %d %s", code, body)
	}
	if l := out.lines(commandsDisabled); len(l) != 1 || l[0]["level"] != "info" {
		t.Errorf("%d lines saying that the commands are disabled, want 1:\n%s", len(l), out.String())
	}
	if l := out.lines("serving HTTP"); len(l) != 1 || l[0]["commands"] != "disabled: no admin token" {
		t.Errorf("serving HTTP lines = %v", l)
	}
}

// TestStartWithAdminToken starts the daemon with an admin token: the commands answer 401
// without it or with another, reach the daemon with it, the read endpoints stay open, and the
// start says that the commands are enabled, without the token.
func TestStartWithAdminToken(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out syncBuffer
	log, err := logging.New(&out, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(log, "127.0.0.1:0", []string{"p"}, daemon.Options{AdminToken: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Shutdown(context.Background()) }()
	base := "http://" + d.Addr()
	send := func(auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/v1/projections/p/skip", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, auth := range []string{"", "Bearer t0ke", "Bearer t0kenX"} {
		if code, body := send(auth); code != http.StatusUnauthorized || !strings.Contains(body, "admin token") {
			t.Errorf("skip with Authorization %q = %d %s, want 401", auth, code, body)
		}
	}
	// The right token reaches the daemon, which is not running its projections yet.
	if code, body := send("Bearer t0ken"); code != http.StatusServiceUnavailable || !strings.Contains(body, "still connecting") {
		t.Errorf("skip with the token = %d %s, want 503 still connecting", code, body)
	}
	if code, body := get(t, base+"/v1/projections"); code != 200 || !strings.Contains(body, `"name": "p"`) {
		t.Errorf("GET /v1/projections with an admin token set = %d %s", code, body)
	}
	if w := out.lines(commandsDisabled); len(w) != 0 {
		t.Errorf("said that the commands are disabled with a token set:\n%s", out.String())
	}
	if l := out.lines("serving HTTP"); len(l) != 1 || l[0]["commands"] != "enabled: they require the admin token" {
		t.Errorf("serving HTTP lines = %v", l)
	}
	if strings.Contains(out.String(), "t0ken") {
		t.Errorf("the log shows the admin token:\n%s", out.String())
	}
}
