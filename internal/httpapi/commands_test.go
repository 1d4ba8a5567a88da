package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// verbs are the commands of the API.
var verbs = []string{"resume", "skip", "reset", "rebuild", "rollback"}

// commandServer serves the API with a controller that resumes, skips and resets, and the admin
// token token (none when empty), for a stopped projection "dogs" this replica leads.
func commandServer(t *testing.T, token string) (*httptest.Server, *controller) {
	t.Helper()
	f := &fake{head: 500, statuses: []projection.Status{
		{Name: "dogs", State: projection.StateStopped, Leader: true, Position: 400, Error: "boom",
			Failed: &projection.Failure{EventID: "e1", Type: "T", Position: tracking.Position{Commit: 420, Prepare: 420}, Error: "boom"}},
	}}
	c := &controller{f: f}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Controller: c, Waiter: &tracking.Watermark{}, AdminToken: token}))
	t.Cleanup(srv.Close)
	return srv, c
}

// send posts to url with the given headers and returns the status and the decoded error.
func send(t *testing.T, url string, headers map[string]string) (int, string, httpapi.ErrorJSON) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	var e httpapi.ErrorJSON
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil && resp.StatusCode != http.StatusOK {
		t.Errorf("POST %s: %d without a JSON error: %v", url, resp.StatusCode, err)
	}
	fmt.Fprintf(&b, "%d %s", resp.StatusCode, e.Error)
	return resp.StatusCode, b.String(), e
}

// Without an admin token every command answers 403 with a JSON error saying how to enable the
// commands, whatever the request carries, and none reaches the controller; the read endpoints
// stay open.
func TestCommandsClosedWithoutAnAdminToken(t *testing.T) {
	srv, c := commandServer(t, "")
	for _, verb := range verbs {
		for _, h := range []map[string]string{nil, {"Authorization": "Bearer anything"}, {"Authorization": "Bearer "}} {
			url := srv.URL + "/v1/projections/dogs/" + verb
			code, got, e := send(t, url, h)
			if code != http.StatusForbidden || !strings.Contains(e.Error, verb+` "dogs": commands are disabled: this daemon has no admin token`) ||
				!strings.Contains(e.Error, "set PROJECTOR_ADMIN_TOKEN (or PROJECTOR_ADMIN_TOKEN_FILE, a file holding it) on the daemon") {
				t.Errorf("POST %s with %v = %s, want 403 saying how to enable commands", url, h, got)
			}
		}
		// Before the 404 and the 400 too.
		for _, path := range []string{"/v1/projections/birds/" + verb, "/v1/projections/dogs/" + verb + "?force=1"} {
			if code, got, _ := send(t, srv.URL+path, nil); code != http.StatusForbidden {
				t.Errorf("POST %s = %s, want 403", path, got)
			}
		}
	}
	if len(c.calls) != 0 {
		t.Errorf("commands reached the controller without an admin token: %v", c.calls)
	}
	for _, path := range []string{"/healthz", "/v1/projections", "/v1/projections/dogs"} {
		if code, body := get(t, srv.URL+path, nil); code != http.StatusOK {
			t.Errorf("GET %s without an admin token = %d %s", path, code, body)
		}
	}
}

// With an admin token, every command answers 401 with a wrong or missing token, and runs with
// the right one.
func TestEveryCommandRequiresTheAdminToken(t *testing.T) {
	for _, verb := range verbs {
		srv, c := commandServer(t, "tok-3e1")
		url := srv.URL + "/v1/projections/dogs/" + verb
		for _, auth := range []string{"", "Bearer", "Bearer tok-3e", "Bearer tok-3e1x", "Basic tok-3e1"} {
			h := map[string]string{}
			if auth != "" {
				h["Authorization"] = auth
			}
			if code, got, _ := send(t, url, h); code != http.StatusUnauthorized {
				t.Errorf("POST %s with Authorization %q = %s, want 401", url, auth, got)
			}
		}
		if len(c.calls) != 0 {
			t.Errorf("%s without the token reached the controller: %v", verb, c.calls)
		}
		if code, got, _ := send(t, url, map[string]string{"Authorization": "Bearer tok-3e1"}); code != http.StatusOK {
			t.Errorf("POST %s with the token = %s, want 200", url, got)
		}
		if want := fmt.Sprint([]string{verb + " dogs"}); fmt.Sprint(c.calls) != want {
			t.Errorf("calls = %v, want %s", c.calls, want)
		}
	}
}

// A browser page of another origin cannot send a command, even with the token (a page could
// learn it, or the browser could add it); the CLI's requests, without Sec-Fetch-Site or Origin,
// and same-origin ones are taken.
func TestCrossOriginCommandsRefused(t *testing.T) {
	const auth = "Bearer tok-9"
	for _, verb := range verbs {
		srv, c := commandServer(t, "tok-9")
		url := srv.URL + "/v1/projections/dogs/" + verb
		for _, h := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
			{"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
			{"Origin": "https://evil.example"}, // an older browser: no Sec-Fetch-Site
			{"Origin": "null"},
		} {
			h["Authorization"] = auth
			if code, got, e := send(t, url, h); code != http.StatusForbidden || !strings.Contains(e.Error, "refused a request from a web page of another origin") {
				t.Errorf("POST %s with %v = %s, want 403 cross-origin", url, h, got)
			}
			delete(h, "Authorization")
			if code, got, _ := send(t, url, h); code != http.StatusForbidden {
				t.Errorf("POST %s with %v and no token = %s, want 403", url, h, got)
			}
		}
		if len(c.calls) != 0 {
			t.Errorf("cross-origin %s reached the controller: %v", verb, c.calls)
		}
		host := strings.TrimPrefix(srv.URL, "http://")
		for _, h := range []map[string]string{
			{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL},
			{"Origin": "http://" + host},
			{"Sec-Fetch-Site": "none"},
		} {
			h["Authorization"] = auth
			c.f.mu.Lock()
			c.f.statuses[0].State = projection.StateStopped
			c.f.mu.Unlock()
			if code, got, _ := send(t, url, h); code != http.StatusOK {
				t.Errorf("POST %s with %v = %s, want 200", url, h, got)
			}
		}
	}
	// Without a token a cross-origin request is refused as cross-origin first.
	srv, _ := commandServer(t, "")
	if code, got, e := send(t, srv.URL+"/v1/projections/dogs/reset", map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden ||
		!strings.Contains(e.Error, "another origin") {
		t.Errorf("cross-origin reset without a token = %s", got)
	}
}
