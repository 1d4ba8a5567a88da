package httpapi_test

import (
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// A wait refused because the waits are full is a wait span with the outcome refused; a request
// with bad parameters makes no span.
func TestWaitSpanOfARefusedWait(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	f := &fake{statuses: []projection.Status{{Name: "dogs", State: projection.StateLive}}}
	wm := &tracking.Watermark{}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Waiter: wm, MaxWaits: 1, Tracing: tr}))
	defer srv.Close()
	url := srv.URL + "/v1/projections/dogs/wait?position=900&timeout=10s"
	answered := make(chan error, 1)
	go func() {
		var w httpapi.WaitJSON
		_, _, _, err := fetch(url, &w)
		answered <- err
	}()
	waitingFor(t, wm, "dogs", 1)
	if code, body := get(t, url, nil); code != 503 {
		t.Fatalf("second wait = %d %s; want 503", code, body)
	}
	if code, body := get(t, srv.URL+"/v1/projections/dogs/wait?position=x", nil); code != 400 {
		t.Fatalf("bad wait = %d %s", code, body)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != tracing.SpanWait {
		t.Fatalf("spans %v, want the refused wait's", spans)
	}
	var outcome, position any
	for _, kv := range spans[0].Attributes {
		switch kv.Key {
		case tracing.AttrWaitOutcome:
			outcome = kv.Value.AsString()
		case tracing.AttrWaitPosition:
			position = kv.Value.AsInt64()
		}
	}
	if outcome != "refused" || position != int64(900) || len(spans[0].Links) != 0 {
		t.Errorf("refused wait span: outcome %v, position %v, links %v", outcome, position, spans[0].Links)
	}
	wm.Set("dogs", tracking.State{Last: tracking.Position{Commit: 900, Prepare: 900}})
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	// The span ends once the answer is written: the client may read it a moment before.
	poll.Until(t, 5*time.Second, "the first wait's span", func() bool { return len(exp.GetSpans()) == 2 })
}
