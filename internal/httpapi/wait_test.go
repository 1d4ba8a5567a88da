package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// fetch GETs url and decodes its JSON body into into; it does not use t, so that goroutines
// may call it.
func fetch(url string, into any) (int, http.Header, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = json.Unmarshal(b, into)
	}
	if err != nil {
		return resp.StatusCode, resp.Header, string(b), fmt.Errorf("%s: %w: %s", url, err, b)
	}
	return resp.StatusCode, resp.Header, string(b), nil
}

// waitingFor fails t unless wm has n waiters on projection within 5s.
func waitingFor(t *testing.T, wm *tracking.Watermark, projection string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); wm.Waiting(projection) != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters on %s, want %d", wm.Waiting(projection), projection, n)
		}
	}
}

func TestWaitsBeyondTheCapAreRefusedWithRetryAfter(t *testing.T) {
	f := &fake{statuses: []projection.Status{{Name: "dogs", State: projection.StateLive}}}
	wm := &tracking.Watermark{}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Waiter: wm, MaxWaits: 2}))
	defer srv.Close()
	url := srv.URL + "/v1/projections/dogs/wait?position=900&timeout=10s"

	answers := make(chan error, 2)
	for range 2 {
		go func() {
			var w httpapi.WaitJSON
			code, _, body, err := fetch(url, &w)
			if err == nil && (code != 200 || !w.Done || w.Position != 900) {
				err = fmt.Errorf("capped wait = %d %s; want 200 done at 900", code, body)
			}
			answers <- err
		}()
	}
	waitingFor(t, wm, "dogs", 2)

	var refused httpapi.ErrorJSON
	code, header, body, err := fetch(url, &refused)
	if err != nil {
		t.Fatal(err)
	}
	if code != 503 || header.Get("Retry-After") != "1" || header.Get("Content-Type") != "application/json" ||
		!strings.Contains(refused.Error, "2 waits are in progress") {
		t.Errorf("third wait = %d (Retry-After %q) %s; want 503, Retry-After 1 and a JSON error", code, header.Get("Retry-After"), body)
	}
	// Requests that are not waits, and bad waits, are not refused.
	if code, _ := get(t, srv.URL+"/v1/projections/dogs", nil); code != 200 {
		t.Errorf("status while the waits are full = %d", code)
	}
	if code, body := get(t, srv.URL+"/v1/projections/dogs/wait", nil); code != 400 {
		t.Errorf("bad wait while the waits are full = %d %s", code, body)
	}

	wm.Set("dogs", tracking.State{Last: tracking.Position{Commit: 900, Prepare: 900}})
	for range 2 {
		if err := <-answers; err != nil {
			t.Error(err)
		}
	}
	// The places are given back.
	waitingFor(t, wm, "dogs", 0)
	for range 3 {
		if code, body := get(t, url, nil); code != 200 {
			t.Errorf("wait after the others ended = %d %s", code, body)
		}
	}
}

func TestWaitOutlastsTheServersWriteTimeout(t *testing.T) {
	f := &fake{statuses: []projection.Status{{Name: "dogs", State: projection.StateLive}}}
	wm := &tracking.Watermark{}
	srv := httptest.NewUnstartedServer(httpapi.New(httpapi.Options{Provider: f, Waiter: wm}))
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	var w httpapi.WaitJSON
	code, body := get(t, srv.URL+"/v1/projections/dogs/wait?position=5&timeout=500ms", &w)
	if code != 504 || w.Requested != 5 || w.Done {
		t.Errorf("wait longer than the write timeout = %d %s; want 504 with the position", code, body)
	}
	// Other answers keep the server's write timeout.
	if code, _ := get(t, srv.URL+"/v1/projections/dogs", nil); code != 200 {
		t.Errorf("status = %d", code)
	}
}
