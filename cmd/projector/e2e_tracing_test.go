package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/testbin"
)

// exportedSpan is what the console exporter writes of a span (the fields the test reads).
type exportedSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Links       []struct {
		SpanContext struct{ TraceID, SpanID string }
	}
	Attributes []struct {
		Key   string
		Value struct{ Value any }
	}
	Resource []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s exportedSpan) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

// TestTracingConsoleExporter runs the daemon with OTEL_TRACES_EXPORTER=console: its batch spans
// and the span of a wait request (a child of the request's traceparent, linked to the batch
// that released it) are written to stdout, flushed when it exits on SIGTERM.
func TestTracingConsoleExporter(t *testing.T) {
	t.Parallel()
	dbURL, _, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	var last uint64
	for _, name := range []string{"Fido", "Milly", "Rex"} {
		pos, err := school.Register(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	cfg := writeFile(t, "p.yaml", `projections:
  - name: names
    schema: CREATE TABLE IF NOT EXISTS names (name text PRIMARY KEY);
    handlers:
      "__main__:Dog.Registered": INSERT INTO names VALUES (@data->>'name')
`)
	addr := testbin.FreeAddr(t)
	d := start(t, projectorBin, testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_CONFIG="+cfg, "OTEL_TRACES_EXPORTER=console", "OTEL_SERVICE_NAME=projector-e2e"), "run")
	healthy(t, d, addr)
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/v1/projections/names/wait?position=%d&timeout=30s", addr, last), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("wait for %d: %d", last, resp.StatusCode)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}

	var batches, waits []exportedSpan
	sc := bufio.NewScanner(strings.NewReader(d.Output()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s exportedSpan
		if json.Unmarshal(sc.Bytes(), &s) != nil || s.SpanContext.SpanID == "" {
			continue // a log line
		}
		switch s.Name {
		case "projector.batch":
			batches = append(batches, s)
		case "projector.wait":
			waits = append(waits, s)
		}
	}
	var events float64
	for _, b := range batches {
		if b.attr("projector.projection") != "names" || b.attr("projector.batch.outcome") != "committed" {
			t.Errorf("batch span %+v", b.Attributes)
		}
		n, _ := b.attr("projector.batch.events").(float64)
		events += n
	}
	if events != 3 {
		t.Errorf("the batch spans applied %v events, want the 3 written", events)
	}
	if len(waits) != 1 {
		t.Fatalf("%d wait spans, want 1", len(waits))
	}
	w := waits[0]
	if w.SpanContext.TraceID != traceID || w.Parent.SpanID != parentID {
		t.Errorf("wait span in trace %s with parent %s, want %s and %s", w.SpanContext.TraceID, w.Parent.SpanID, traceID, parentID)
	}
	if w.attr("projector.wait.outcome") != "done" || w.attr("projector.wait.position") != float64(last) {
		t.Errorf("wait span attributes %+v", w.Attributes)
	}
	if len(w.Links) != 1 {
		t.Fatalf("wait span links %+v, want the batch that released it", w.Links)
	}
	var released *exportedSpan
	for i, b := range batches {
		if b.SpanContext.SpanID == w.Links[0].SpanContext.SpanID {
			released = &batches[i]
		}
	}
	if released == nil || released.attr("projector.batch.position").(float64) < float64(last) {
		t.Errorf("the wait links to %+v, not to the batch that reached %d", released, last)
	}
	var service any
	for _, r := range w.Resource {
		if r.Key == "service.name" {
			service = r.Value.Value
		}
	}
	if service != "projector-e2e" {
		t.Errorf("service.name %v, want OTEL_SERVICE_NAME", service)
	}
}
