package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// parkedFake keeps the parked streams of projection "dogs" and records the commands.
type parkedFake struct {
	mu      sync.Mutex
	streams map[string]int // stream: parked events
	calls   []string
	err     error // returned by the commands when set
}

func (p *parkedFake) ParkedStreams(_ context.Context, name string) ([]projection.ParkedStream, error) {
	if name != "dogs" {
		return nil, fmt.Errorf("parked streams of %q: %w", name, tracking.ErrUnknownProjection)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []projection.ParkedStream
	for s, n := range p.streams {
		out = append(out, projection.ParkedStream{Stream: s, Events: n, First: projection.ParkedEvent{
			Event: projection.Event{ID: "e-" + s, Type: "T", Stream: s, Revision: 1, Position: tracking.Position{Commit: 420, Prepare: 420}},
			Error: "boom", ParkedAt: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}})
	}
	return out, nil
}

func (p *parkedFake) command(verb, name, stream string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, verb+" "+name+" "+stream)
	if p.err != nil {
		return 0, p.err
	}
	n, ok := p.streams[stream]
	if !ok {
		return 0, fmt.Errorf("%s %q stream %q: %w", verb, name, stream, projection.ErrNotParked)
	}
	delete(p.streams, stream)
	return n, nil
}

func (p *parkedFake) ResumeStream(_ context.Context, name, stream string) (int, error) {
	return p.command("resume", name, stream)
}

func (p *parkedFake) SkipStream(_ context.Context, name, stream string) (int, error) {
	return p.command("skip", name, stream)
}

func parkedServer(t *testing.T, token string) (*httptest.Server, *parkedFake) {
	t.Helper()
	f := &fake{head: 500, statuses: []projection.Status{{Name: "dogs", State: projection.StateLive, Leader: true, Position: 500, ParkedStreams: 2}}}
	p := &parkedFake{streams: map[string]int{"dog-1": 3, "a/b c": 1}}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Controller: &controller{f: f}, Parked: p, Waiter: &tracking.Watermark{}, AdminToken: token}))
	t.Cleanup(srv.Close)
	return srv, p
}

func postParked(t *testing.T, u, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	fmt.Fprint(&b, m)
	return resp.StatusCode, b.String()
}

func TestParkedStreamsAreListedWithoutAToken(t *testing.T) {
	srv, _ := parkedServer(t, "")
	for _, path := range []string{"/v1/parked", "/v1/parked?projection=dogs", "/v1/projections/dogs/parked"} {
		var list httpapi.ParkedJSON
		if code, body := get(t, srv.URL+path, &list); code != http.StatusOK || len(list.Parked) != 2 {
			t.Errorf("GET %s = %d %s, want the two parked streams", path, code, body)
			continue
		}
		for _, s := range list.Parked {
			if s.Projection != "dogs" || s.EventID != "e-"+s.Stream || s.Position != 420 || s.Error != "boom" || s.Events == 0 {
				t.Errorf("GET %s: stream %+v", path, s)
			}
		}
	}
	if code, body := get(t, srv.URL+"/v1/projections/cats/parked", nil); code != http.StatusNotFound {
		t.Errorf("GET parked of an unknown projection = %d %s, want 404", code, body)
	}
	var p httpapi.ProjectionJSON
	if code, body := get(t, srv.URL+"/v1/projections/dogs", &p); code != http.StatusOK || p.ParkedStreams != 2 {
		t.Errorf("GET /v1/projections/dogs = %d %s, want parked_streams 2", code, body)
	}
}

func TestParkedCommandsNeedTheTokenAndNameTheirStream(t *testing.T) {
	srv, p := parkedServer(t, "tok-7")
	base := srv.URL + "/v1/projections/dogs/parked/"
	for _, verb := range []string{"resume", "skip"} {
		if code, got := postParked(t, base+verb+"?stream=dog-1", "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token = %d %s, want 401", verb, code, got)
		}
		if code, got := postParked(t, base+verb, "tok-7", ""); code != http.StatusBadRequest || !strings.Contains(got, "say which stream") {
			t.Errorf("%s without a stream = %d %s, want 400", verb, code, got)
		}
		if code, got := postParked(t, base+verb+"?stream=x&id=1", "tok-7", ""); code != http.StatusBadRequest {
			t.Errorf("%s with an unknown parameter = %d %s, want 400", verb, code, got)
		}
	}
	if len(p.calls) != 0 {
		t.Fatalf("refused commands reached the parked streams: %v", p.calls)
	}
	if code, got := postParked(t, base+"resume?stream="+url.QueryEscape("dog-1"), "tok-7", ""); code != http.StatusOK || !strings.Contains(got, "resumed:3") {
		t.Errorf("resume = %d %s, want 200 with 3 resumed", code, got)
	}
	if code, got := postParked(t, base+"skip", "tok-7", `{"stream": "a/b c"}`); code != http.StatusOK || !strings.Contains(got, "skipped:1") {
		t.Errorf("skip = %d %s, want 200 with 1 skipped", code, got)
	}
	if code, got := postParked(t, base+"resume?stream=dog-1", "tok-7", ""); code != http.StatusNotFound || !strings.Contains(got, "not parked") {
		t.Errorf("resume of a stream not parked = %d %s, want 404", code, got)
	}
	if want := "[resume dogs dog-1 skip dogs a/b c resume dogs dog-1]"; fmt.Sprint(p.calls) != want {
		t.Errorf("calls = %v, want %s", p.calls, want)
	}
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", projection.ErrStillFailing):    http.StatusUnprocessableEntity,
		fmt.Errorf("x: %w", projection.ErrNotLeader):       http.StatusConflict,
		fmt.Errorf("x: %w", httpapi.ErrUnavailable):        http.StatusServiceUnavailable,
		fmt.Errorf("x: %w", tracking.ErrUnknownProjection): http.StatusNotFound,
	} {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		if code, got := postParked(t, base+"resume?stream=dog-1", "tok-7", ""); code != want {
			t.Errorf("resume failing with %v = %d %s, want %d", err, code, got, want)
		}
	}
}
