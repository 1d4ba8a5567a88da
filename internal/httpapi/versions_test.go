package httpapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// The version commands answer 409 with the reason when the Versioner refuses, 404 for an
// unknown projection, and 503 when the controller takes no version commands.
func TestVersionCommandsAnswers(t *testing.T) {
	srv, c := commandServer(t, testToken)
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	c.err = fmt.Errorf("rollback %q: no earlier version keeps its tables: %w", "dogs", httpapi.ErrRefused)
	if code, got, e := send(t, srv.URL+"/v1/projections/dogs/rollback", auth); code != http.StatusConflict || !strings.Contains(e.Error, "no earlier version keeps its tables") {
		t.Errorf("refused rollback = %s, want 409 with the reason", got)
	}
	c.err = fmt.Errorf("%q: %w", "birds", tracking.ErrUnknownProjection)
	if code, got, _ := send(t, srv.URL+"/v1/projections/birds/rebuild", auth); code != http.StatusNotFound {
		t.Errorf("rebuild of an unknown projection = %s, want 404", got)
	}
	c.err = errors.New("boom")
	if code, got, _ := send(t, srv.URL+"/v1/projections/dogs/rebuild", auth); code != http.StatusInternalServerError {
		t.Errorf("failed rebuild = %s, want 500", got)
	}

	// A controller without version commands.
	plain := httptest.NewServer(httpapi.New(httpapi.Options{Provider: c.f, Controller: struct{ httpapi.Controller }{c}, AdminToken: testToken}))
	defer plain.Close()
	for _, verb := range []string{"rebuild", "rollback"} {
		if code, got, e := send(t, plain.URL+"/v1/projections/dogs/"+verb, auth); code != http.StatusServiceUnavailable || !strings.Contains(e.Error, "no versioned projections") {
			t.Errorf("%s without a Versioner = %s, want 503", verb, got)
		}
	}
}

// A version building that stops does not make the replica unready: the serving version answers
// the reads.
func TestReadyzIgnoresVersionsBuilding(t *testing.T) {
	f := &fake{head: 500, statuses: []projection.Status{
		{Name: "dogs", State: projection.StateLive, Leader: true, Position: 500, CaughtUp: true},
		{Name: "dogs@63848c7acf8b0330", State: projection.StateStopped, Leader: true, Position: 400, Error: "boom",
			Failed: &projection.Failure{EventID: "e1", Type: "T", Error: "boom"}},
	}}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz with a stopped build = %d, want 200", resp.StatusCode)
	}
	f.statuses[0].State, f.statuses[0].Error = projection.StateStopped, "boom"
	resp, err = http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the serving version stopped = %d, want 503", resp.StatusCode)
	}
}
