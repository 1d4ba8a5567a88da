package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// controller stops and restarts the fake's projections as a runner would.
type controller struct {
	f     *fake
	calls []string
	err   error
}

func (c *controller) do(verb, name string) error {
	c.calls = append(c.calls, verb+" "+name)
	if c.err != nil {
		return c.err
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	for i := range c.f.statuses {
		s := &c.f.statuses[i]
		if s.Name != name {
			continue
		}
		if s.State != projection.StateStopped {
			return fmt.Errorf("%s %q: it is %s: %w", verb, name, s.State, projection.ErrNotStopped)
		}
		s.State, s.Failed, s.Error = projection.StateStarting, nil, ""
		return nil
	}
	return fmt.Errorf("%s %q: %w", verb, name, tracking.ErrUnknownProjection)
}

func (c *controller) Resume(_ context.Context, name string) error { return c.do("resume", name) }

func (c *controller) Skip(_ context.Context, name string) error { return c.do("skip", name) }

func (c *controller) Rebuild(_ context.Context, name string) error {
	return c.do("rebuild", name)
}

func (c *controller) Rollback(_ context.Context, name string) error {
	return c.do("rollback", name)
}

// post posts to url with the admin token testToken, and decodes a 200 answer into into.
func post(t *testing.T, url string, into any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func TestResumeAndSkip(t *testing.T) {
	f := &fake{head: 500, statuses: []projection.Status{
		{Name: "dogs", State: projection.StateStopped, Leader: true, Position: 400, Error: `projection "dogs": event e1: boom`,
			Failed: &projection.Failure{EventID: "e1", Type: "T", Position: tracking.Position{Commit: 420, Prepare: 420}, Error: "boom"}},
		{Name: "tricks", State: projection.StateStandby, Position: 300},
		{Name: "cats", State: projection.StateLive, Leader: true, Position: 500},
	}}
	c := &controller{f: f}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Controller: c, AdminToken: testToken}))
	defer srv.Close()

	// The status shows the error and the poison event.
	var before httpapi.ProjectionJSON
	if code, body := get(t, srv.URL+"/v1/projections/dogs", &before); code != 200 || before.Error != `projection "dogs": event e1: boom` ||
		before.Failed == nil || before.Failed.EventID != "e1" || !strings.Contains(body, `"error": "projection \"dogs\": event e1: boom"`) {
		t.Errorf("stopped status = %d %s", code, body)
	}

	var after httpapi.ProjectionJSON
	if code, body := post(t, srv.URL+"/v1/projections/dogs/resume", &after); code != 200 || after.State != projection.StateStarting || after.Failed != nil || after.Error != "" {
		t.Errorf("resume = %d %s", code, body)
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/projections/dogs/skip", 409, `skip \"dogs\": it is starting: projection is not stopped`},
		{"/v1/projections/tricks/resume", 409, `resume \"tricks\": this replica does not lead the projection (it is standby here)`},
		{"/v1/projections/birds/skip", 404, `unknown projection \"birds\"`},
		{"/v1/projections/dogs/resume?force=1", 400, "resume takes no query parameters"},
	} {
		if code, body := post(t, srv.URL+tc.path, nil); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s = %d %s, want %d %s", tc.path, code, body, tc.code, tc.want)
		}
	}
	if code, _ := get(t, srv.URL+"/v1/projections/dogs/resume", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET resume = %d, want 405", code)
	}
	want := []string{"resume dogs", "skip dogs", "resume tricks", "skip birds"}
	if fmt.Sprint(c.calls) != fmt.Sprint(want) {
		t.Errorf("controller calls = %v, want %v", c.calls, want)
	}

	c.err = fmt.Errorf("resume: %w", httpapi.ErrUnavailable)
	if code, body := post(t, srv.URL+"/v1/projections/dogs/resume", nil); code != 503 || !strings.Contains(body, "not running its projections") {
		t.Errorf("while starting: %d %s", code, body)
	}
	noCtl := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, AdminToken: testToken}))
	defer noCtl.Close()
	if code, _ := post(t, noCtl.URL+"/v1/projections/dogs/skip", nil); code != 503 {
		t.Errorf("without a controller: %d", code)
	}
}

// postAuth posts to url with the Authorization header auth (none when empty).
func postAuth(t *testing.T, url, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
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
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// With an admin token, the commands answer 401 (with a JSON error and a WWW-Authenticate
// challenge) unless the request carries it, before looking at the projection or the query; the
// read endpoints stay open.
func TestCommandsRequireTheAdminToken(t *testing.T) {
	f := &fake{head: 500, statuses: []projection.Status{
		{Name: "dogs", State: projection.StateStopped, Leader: true, Position: 400, Error: "boom",
			Failed: &projection.Failure{EventID: "e1", Type: "T", Position: tracking.Position{Commit: 420, Prepare: 420}, Error: "boom"}},
	}}
	c := &controller{f: f}
	wm := &tracking.Watermark{}
	wm.Set("dogs", tracking.State{Last: tracking.Position{Commit: 400, Prepare: 400}})
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Controller: c, Waiter: wm, AdminToken: "s3cret-token",
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "projector_x 1\n") })}))
	defer srv.Close()

	for _, tc := range []struct {
		path, auth, want string
	}{
		{"/v1/projections/dogs/skip", "", `skip \"dogs\": this server requires the admin token: send the header Authorization: Bearer <token>`},
		{"/v1/projections/dogs/resume", "Bearer wrong", `resume \"dogs\": the admin token is wrong`},
		{"/v1/projections/dogs/resume", "Bearer s3cret-tokeN", "the admin token is wrong"},  // same length
		{"/v1/projections/dogs/resume", "Bearer s3cret-token2", "the admin token is wrong"}, // a longer one
		{"/v1/projections/dogs/resume", "Bearer s3cret", "the admin token is wrong"},        // a prefix
		{"/v1/projections/dogs/resume", "Bearer ", "the admin token is wrong"},              // empty
		{"/v1/projections/dogs/resume", "Basic s3cret-token", `uses the \"Basic\" scheme`},  // not a bearer token
		{"/v1/projections/dogs/resume", "s3cret-token", `uses the \"s3cret-token\" scheme`},
		{"/v1/projections/birds/skip", "", "requires the admin token"},          // before the 404
		{"/v1/projections/dogs/resume?force=1", "", "requires the admin token"}, // before the 400
	} {
		resp, body := postAuth(t, srv.URL+tc.path, tc.auth)
		var e httpapi.ErrorJSON
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(body, tc.want) ||
			resp.Header.Get("WWW-Authenticate") != `Bearer realm="projector"` || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("POST %s with %q = %d %v %s, want 401 %s", tc.path, tc.auth, resp.StatusCode, resp.Header, body, tc.want)
		}
	}
	if len(c.calls) != 0 {
		t.Fatalf("commands without the token reached the controller: %v", c.calls)
	}

	// The right token (the scheme in any case) runs the command.
	resp, body := postAuth(t, srv.URL+"/v1/projections/dogs/resume", "bearer s3cret-token")
	var after httpapi.ProjectionJSON
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &after) != nil || after.State != projection.StateStarting {
		t.Errorf("resume with the token = %d %s", resp.StatusCode, body)
	}
	if resp, body := postAuth(t, srv.URL+"/v1/projections/birds/skip", "Bearer s3cret-token"); resp.StatusCode != 404 {
		t.Errorf("skip of an unknown projection with the token = %d %s", resp.StatusCode, body)
	}
	if fmt.Sprint(c.calls) != "[resume dogs skip birds]" {
		t.Errorf("controller calls = %v", c.calls)
	}

	// The read endpoints need no token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/projections", "/v1/projections/dogs", "/v1/projections/dogs/wait?position=400"} {
		if code, body := get(t, srv.URL+path, nil); code == http.StatusUnauthorized || (path != "/readyz" && code != 200) {
			t.Errorf("GET %s with a token set = %d %s", path, code, body)
		}
	}
}

// Reset resets, as the daemon's runner does: only on the replica that leads the projection.
func (c *controller) Reset(_ context.Context, name string) error {
	c.calls = append(c.calls, "reset "+name)
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	for i := range c.f.statuses {
		s := &c.f.statuses[i]
		if s.Name != name {
			continue
		}
		if len(s.Partitions) > 0 {
			return fmt.Errorf("reset %q: %w", name, projection.ErrPartitionedReset)
		}
		if !s.Leader {
			return fmt.Errorf("reset %q: %w", name, projection.ErrNotLeader)
		}
		s.State, s.Failed, s.Error, s.Position, s.Tracking = projection.StateStarting, nil, "", 0, tracking.State{}
		return nil
	}
	return fmt.Errorf("reset %q: %w", name, tracking.ErrUnknownProjection)
}

func TestReset(t *testing.T) {
	f := &fake{head: 500, statuses: []projection.Status{
		{Name: "dogs", State: projection.StateStopped, Leader: true, Position: 400, Error: "boom",
			Failed: &projection.Failure{EventID: "e1", Type: "T", Position: tracking.Position{Commit: 420, Prepare: 420}, Error: "boom"}},
		{Name: "tricks", State: projection.StateStandby, Position: 300},
		{Name: "cats", State: projection.StateLive, Leader: true, Position: 500},
		{Name: "ticks", State: projection.StateLive, Leader: true, Position: 450, Partitions: []projection.Status{
			{Name: "ticks#0", State: projection.StateLive, Leader: true, Position: 450},
			{Name: "ticks#1", State: projection.StateStandby, Position: 480, LeaderMember: "r2"},
		}},
	}}
	c := &controller{f: f}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Controller: c, AdminToken: "tok"}))
	defer srv.Close()

	if resp, body := postAuth(t, srv.URL+"/v1/projections/cats/reset", ""); resp.StatusCode != 401 || !strings.Contains(body, `reset \"cats\": this server requires the admin token`) {
		t.Errorf("reset without the token = %d %s", resp.StatusCode, body)
	}
	for _, name := range []string{"cats", "dogs"} {
		resp, body := postAuth(t, srv.URL+"/v1/projections/"+name+"/reset", "Bearer tok")
		var after httpapi.ProjectionJSON
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &after) != nil || after.Name != name ||
			after.State != projection.StateStarting || after.Position != 0 || after.Failed != nil || after.Error != "" {
			t.Errorf("reset %s = %d %s, want 200 with the projection starting at 0", name, resp.StatusCode, body)
		}
	}
	if resp, body := postAuth(t, srv.URL+"/v1/projections/tricks/reset", "Bearer tok"); resp.StatusCode != 409 || !strings.Contains(body, "this replica does not lead the projection") {
		t.Errorf("reset on a standby = %d %s, want 409", resp.StatusCode, body)
	}
	if resp, body := postAuth(t, srv.URL+"/v1/projections/birds/reset", "Bearer tok"); resp.StatusCode != 404 || !strings.Contains(body, `unknown projection \"birds\"`) {
		t.Errorf("reset of an unknown projection = %d %s, want 404", resp.StatusCode, body)
	}
	if resp, body := postAuth(t, srv.URL+"/v1/projections/ticks/reset", "Bearer tok"); resp.StatusCode != 409 || !strings.Contains(body, "a partitioned projection is not reset online") {
		t.Errorf("online reset of a partitioned projection = %d %s, want 409", resp.StatusCode, body)
	}
	var ticks httpapi.ProjectionJSON
	if code, body := get(t, srv.URL+"/v1/projections/ticks", nil); code != 200 || json.Unmarshal([]byte(body), &ticks) != nil ||
		len(ticks.Partitions) != 2 || ticks.Partitions[1].Name != "ticks#1" || ticks.Partitions[1].LeaderMember != "r2" || ticks.Partitions[1].Position != 480 {
		t.Errorf("GET ticks = %d %s, want its two partitions", code, body)
	}
	if want := "[reset cats reset dogs reset tricks reset birds reset ticks]"; fmt.Sprint(c.calls) != want {
		t.Errorf("calls = %v, want %s", c.calls, want)
	}
}
