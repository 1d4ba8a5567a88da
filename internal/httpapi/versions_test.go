package httpapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/httpapi"
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
