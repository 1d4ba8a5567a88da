package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

type fake struct {
	mu        sync.Mutex
	statuses  []projection.Status
	head      uint64
	headRead  time.Time
	connected error
}

func (f *fake) Statuses() []projection.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]projection.Status(nil), f.statuses...)
}

func (f *fake) Head() (uint64, bool) { f.mu.Lock(); defer f.mu.Unlock(); return f.head, f.head > 0 }

func (f *fake) HeadRead() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.headRead }

func (f *fake) Connected(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*fake, *tracking.Watermark, *httptest.Server, *[]string) {
	f := &fake{head: 500, statuses: []projection.Status{
		{Name: "dogs", State: projection.StateLive, Leader: true, CaughtUp: true, Position: 500, LastProgress: now},
		{Name: "tricks", State: projection.StateStandby, Position: 300},
	}}
	wm := &tracking.Watermark{}
	var mu sync.Mutex
	var waits []string
	h := httpapi.New(httpapi.Options{
		Provider: f, Waiter: wm, Now: func() time.Time { return now },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "projector_x 1\n") }),
		ObserveWait: func(p string, _ time.Duration) {
			mu.Lock()
			waits = append(waits, p)
			mu.Unlock()
		},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return f, wm, srv, &waits
}

func get(t *testing.T, url string, into any) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func TestHealthMetricsAndProjections(t *testing.T) {
	_, _, srv, _ := setup(t)
	if code, body := get(t, srv.URL+"/healthz", nil); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/metrics", nil); code != 200 || body != "projector_x 1\n" {
		t.Errorf("/metrics = %d %q", code, body)
	}
	var list httpapi.ListJSON
	if code, _ := get(t, srv.URL+"/v1/projections", &list); code != 200 {
		t.Fatalf("/v1/projections = %d", code)
	}
	if *list.Head != 500 || len(list.Projections) != 2 {
		t.Fatalf("list = %+v", list)
	}
	d, tr := list.Projections[0], list.Projections[1]
	if d.Name != "dogs" || d.Position != 500 || *d.Lag != 0 || d.State != "live" || !d.Leader || *d.Head != 500 {
		t.Errorf("dogs = %+v", d)
	}
	if tr.Name != "tricks" || *tr.Lag != 200 || tr.Leader || tr.State != "standby" {
		t.Errorf("tricks = %+v", tr)
	}
	var one httpapi.ProjectionJSON
	if code, _ := get(t, srv.URL+"/v1/projections/tricks", &one); code != 200 || one.Name != "tricks" {
		t.Errorf("/v1/projections/tricks = %d %+v", code, one)
	}
	if code, _ := get(t, srv.URL+"/v1/projections/cats", nil); code != 404 {
		t.Errorf("unknown projection = %d", code)
	}
}

// The head's age shows in /v1/projections: absent while the head's read time is unknown, the
// seconds since it was read otherwise (the head is kept while KurrentDB cannot be read).
func TestHeadAge(t *testing.T) {
	f, _, srv, _ := setup(t)
	var list httpapi.ListJSON
	if _, body := get(t, srv.URL+"/v1/projections", &list); list.HeadAge != nil || strings.Contains(body, "head_age_seconds") {
		t.Errorf("head age without a read time: %s", body)
	}
	f.mu.Lock()
	f.headRead = now.Add(-42500 * time.Millisecond)
	f.mu.Unlock()
	list = httpapi.ListJSON{}
	if _, body := get(t, srv.URL+"/v1/projections", &list); list.HeadAge == nil || *list.HeadAge != 42.5 ||
		list.Projections[0].HeadAge == nil || *list.Projections[0].HeadAge != 42.5 || !strings.Contains(body, `"head_age_seconds": 42.5`) {
		t.Errorf("head age = %s", body)
	}
	var one httpapi.ProjectionJSON
	if get(t, srv.URL+"/v1/projections/dogs", &one); one.HeadAge == nil || *one.HeadAge != 42.5 {
		t.Errorf("/v1/projections/dogs head age = %v", one.HeadAge)
	}
	f.mu.Lock()
	f.head = 0
	f.mu.Unlock()
	list = httpapi.ListJSON{}
	if _, body := get(t, srv.URL+"/v1/projections", &list); list.HeadAge != nil || list.Head != nil {
		t.Errorf("head age without a head: %s", body)
	}
}

func TestWait(t *testing.T) {
	_, wm, srv, waits := setup(t)
	wm.Set("dogs", tracking.State{Last: tracking.Position{Commit: 100, Prepare: 100}})

	// Already processed.
	var w httpapi.WaitJSON
	if code, body := get(t, srv.URL+"/v1/projections/dogs/wait?position=100", &w); code != 200 || !w.Done || w.Position != 100 || w.Requested != 100 {
		t.Errorf("processed: %d %s", code, body)
	}

	// Processed while waiting.
	go func() {
		// Once the request waits, so that it is the commit that answers it.
		for deadline := time.Now().Add(5 * time.Second); wm.Waiting("dogs") == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		wm.Set("dogs", tracking.State{Last: tracking.Position{Commit: 250, Prepare: 250}})
	}()
	w = httpapi.WaitJSON{}
	if code, body := get(t, srv.URL+"/v1/projections/dogs/wait?position=200&timeout=5s", &w); code != 200 || w.Position != 250 {
		t.Errorf("while waiting: %d %s", code, body)
	}

	// Timeout: 504 with the current position.
	w = httpapi.WaitJSON{}
	start := time.Now()
	if code, body := get(t, srv.URL+"/v1/projections/dogs/wait?position=900&timeout=100ms", &w); code != 504 || w.Done || w.Position != 250 || w.Requested != 900 {
		t.Errorf("timeout: %d %s", code, body)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	if len(*waits) != 3 {
		t.Errorf("observed %d waits, want 3", len(*waits))
	}

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/projections/cats/wait?position=1", 404, `unknown projection \"cats\"`},
		{"/v1/projections/dogs/wait", 400, "missing query parameter position"},
		{"/v1/projections/dogs/wait?position=-3", 400, `position \"-3\" is not a commit position`},
		{"/v1/projections/dogs/wait?position=1&timeout=soon", 400, `timeout \"soon\" is not a positive duration`},
		{"/v1/projections/dogs/wait?position=1&timeout=1h", 400, "longer than the maximum"},
		{"/v1/projections/dogs/wait?position=1&wait=1s", 400, `unknown query parameter \"wait\"`},
	} {
		if code, body := get(t, srv.URL+tc.path, nil); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s = %d %s, want %d %s", tc.path, code, body, tc.code, tc.want)
		}
	}
}

type failingWaiter struct{}

func (failingWaiter) Wait(context.Context, string, uint64) (tracking.State, error) {
	return tracking.State{}, errors.New("connection refused")
}

func TestWaitStoreFailure(t *testing.T) {
	f := &fake{statuses: []projection.Status{{Name: "dogs"}}}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Waiter: failingWaiter{}}))
	defer srv.Close()
	if code, body := get(t, srv.URL+"/v1/projections/dogs/wait?position=1", nil); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("= %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	f, _, srv, _ := setup(t)
	if code, body := get(t, srv.URL+"/readyz", nil); code != 200 || body != "ready\n" {
		t.Errorf("ready: %d %q", code, body)
	}
	set := func(fn func()) { f.mu.Lock(); fn(); f.mu.Unlock() }

	// Catching up and making progress is ready; stalled with events pending is not.
	set(func() {
		f.statuses[0] = projection.Status{Name: "dogs", State: projection.StateCatchingUp, Leader: true,
			OldestPending: now.Add(-10 * time.Minute), LastProgress: now.Add(-time.Second)}
	})
	if code, _ := get(t, srv.URL+"/readyz", nil); code != 200 {
		t.Errorf("catching up: %d", code)
	}
	set(func() { f.statuses[0].LastProgress = now.Add(-5 * time.Minute) })
	if code, body := get(t, srv.URL+"/readyz", nil); code != 503 || !strings.Contains(body, "projection dogs: catching up but no commit for 5m0s") {
		t.Errorf("stalled: %d %q", code, body)
	}

	set(func() {
		f.statuses[0] = projection.Status{Name: "dogs", State: projection.StateStopped, Leader: true,
			Failed: &projection.Failure{EventID: "e1", Type: "T", Position: tracking.Position{Commit: 42}, Error: "boom"}}
	})
	if code, body := get(t, srv.URL+"/readyz", nil); code != 503 || !strings.Contains(body, `projection dogs: stopped on event e1 (type "T", position 42): boom`) {
		t.Errorf("stopped: %d %q", code, body)
	}

	set(func() {
		f.statuses[0] = projection.Status{Name: "dogs", State: projection.StateRetrying, Leader: true, Error: `projection "dogs": commit: connection reset`}
	})
	if code, body := get(t, srv.URL+"/readyz", nil); code != 503 || !strings.Contains(body, `projection dogs: retrying: projection "dogs": commit: connection reset`) {
		t.Errorf("retrying: %d %q", code, body)
	}

	set(func() {
		f.statuses[0] = projection.Status{Name: "dogs", State: projection.StateLive, Leader: true, CaughtUp: true}
		f.connected = errors.New("PostgreSQL: connection refused")
	})
	if code, body := get(t, srv.URL+"/readyz", nil); code != 503 || !strings.Contains(body, "not connected: PostgreSQL: connection refused") {
		t.Errorf("disconnected: %d %q", code, body)
	}
}

// testToken is the admin token of the servers that take commands in these tests.
const testToken = "test-admin-token"
