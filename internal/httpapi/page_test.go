package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

func fetchPage(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestStatusPage(t *testing.T) {
	f := &fake{head: 900, headRead: time.Now(), statuses: []projection.Status{
		{Name: "dogs", State: projection.StateStopped, Leader: true, Position: 400, Error: "boom",
			Failed: &projection.Failure{EventID: "0f1e-77", Type: "school:Dog.TrickAdded", Stream: "dog-42",
				Position: tracking.Position{Commit: 420, Prepare: 420}, Error: `relation "tricks" <script>alert(1)</script>`}},
		{Name: "cats", State: projection.StateCatchingUp, Leader: true, Position: 100},
	}}
	l := &letters{all: []httpapi.DeadLetterJSON{httpapi.NewDeadLetterJSON(7, "dogs",
		projection.Event{ID: "dead-1", Type: "school:Dog.Named", Stream: "dog-7", Position: tracking.Position{Commit: 300}}, "bad name", time.Now())}}
	clock := time.Now()
	h := httpapi.NewHistory(f, httpapi.HistoryOptions{Now: func() time.Time { return clock }})
	h.Sample()
	f.mu.Lock()
	f.statuses[1].Position = 400 // 300 positions in 5 s: 500 more to the head take 8 s
	f.mu.Unlock()
	clock = clock.Add(5 * time.Second)
	h.Sample()
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Waiter: &tracking.Watermark{}, DeadLetters: l, History: h}))
	defer srv.Close()

	resp, body := fetchPage(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q allows inline code", csp)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	for _, want := range []string{`data-name="dogs"`, `data-name="cats"`, "stopped", "0f1e-77", "school:Dog.TrickAdded", "dog-42", ">420<",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "Dead letters (1)", "dead-letters/replay", "bad name", "dog-7",
		`data-command="resume"`, `data-command="reset"`, `<meta http-equiv="refresh" content="5">`, `<polyline points="0.0,`,
		"<dt>ETA</dt><dd>8s</dd>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// No inline script or handler: the CSP would block them, and the page must not need them.
	for _, s := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(s, `src="/assets/`) {
			t.Errorf("inline script %s", s)
		}
	}
	if m := regexp.MustCompile(`\son[a-z]+=`).FindString(body); m != "" || strings.Contains(body, "<style") {
		t.Errorf("inline handler or style in the page: %q", m)
	}

	for path, ctype := range map[string]string{"/assets/app.js": "javascript", "/assets/style.css": "text/css"} {
		resp, body := fetchPage(t, srv.URL+path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), ctype) || len(body) < 500 ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s = %s %q (%d bytes)", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/assets/page.html", "/assets/nothing.js", "/nothing"} {
		if resp, _ := fetchPage(t, srv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %s, want 404", path, resp.Status)
		}
	}
}
