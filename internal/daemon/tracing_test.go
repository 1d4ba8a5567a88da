package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

const tracedTopic = "__main__:Dog.Registered"

// tracedDaemon runs a daemon whose spans go to an in-memory exporter, on an in-memory log and
// the memory view, with a projection "dogs" that fails once on the event at failAt (retried).
func tracedDaemon(t *testing.T, failAt uint64) (*projectiontest.Log, *tracetest.InMemoryExporter, string) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	d, err := daemon.Start(zap.NewNop(), "127.0.0.1:0", []string{"dogs"}, daemon.Options{Tracing: tr})
	if err != nil {
		t.Fatal(err)
	}
	log := projectiontest.NewLog()
	var once sync.Once
	p := projection.New[*memory.Tx]("dogs").On(tracedTopic, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		var err error
		if e.Position.Commit == failAt {
			once.Do(func() { err = errors.New("the kennel is full") })
		}
		if err == nil {
			tx.Add("dogs", 1)
		}
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, d, daemon.Config[*memory.Tx]{Source: log, Header: log, Store: memory.New(),
			Projections: []daemon.Projection[*memory.Tx]{{Projection: p, Options: projection.ProjectionOptions{
				BatchSize: 3, OnError: projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 3, Backoff: time.Millisecond}}}}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		_ = d.Shutdown(context.Background())
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return log, exp, "http://" + d.Addr()
}

// attrs returns a span's attributes by key.
func attrs(s tracetest.SpanStub) map[string]any {
	m := map[string]any{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// spansNamed returns the exported spans named name.
func spansNamed(exp *tracetest.InMemoryExporter, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// waitRequest asks the daemon at base to wait for position, with a traceparent header when
// parent is valid; it returns the status code.
func waitRequest(t *testing.T, base string, position uint64, timeout string, parent trace.SpanContext) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/projections/dogs/wait?position=%d&timeout=%s", base, position, timeout), nil)
	if err != nil {
		t.Fatal(err)
	}
	if parent.IsValid() {
		req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", parent.TraceID(), parent.SpanID()))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Every store transaction of a real runner is a projector.batch span with its projection,
// events, first and last position, outcome and times; a handler failure is a rolled-back span
// with the error recorded.
func TestTracingBatchSpans(t *testing.T) {
	// Appended with no data to streams dog0..dog5, the third event lands here.
	failAt := uint64(projectiontest.FirstPosition + 2*(100+len("dog0")+len(tracedTopic)))
	log, exp, base := tracedDaemon(t, failAt)
	var events []projection.Event
	for i := range 6 {
		events = append(events, log.Append(fmt.Sprintf("dog%d", i), tracedTopic, nil))
	}
	if events[2].Position.Commit != failAt {
		t.Fatalf("the failing event is at %d, not where the test expects it", events[2].Position.Commit)
	}
	last := events[len(events)-1].Position.Commit
	if code := waitRequest(t, base, last, "20s", trace.SpanContext{}); code != http.StatusOK {
		t.Fatalf("wait for %d: %d", last, code)
	}
	applied := map[uint64]bool{}
	var rolledBack int
	for _, s := range spansNamed(exp, tracing.SpanBatch) {
		a := attrs(s)
		if a["projector.projection"] != "dogs" {
			t.Errorf("batch span of projection %v", a["projector.projection"])
		}
		if !s.EndTime.After(s.StartTime) || s.StartTime.IsZero() {
			t.Errorf("batch span from %v to %v", s.StartTime, s.EndTime)
		}
		n, _ := a["projector.batch.events"].(int64)
		switch a["projector.batch.outcome"] {
		case "committed":
			if n == 0 {
				continue
			}
			first, last := uint64(a["projector.batch.first_position"].(int64)), uint64(a["projector.batch.last_position"].(int64))
			// The position committed is the last event's, or past it when a server checkpoint
			// was committed with the batch.
			if a["projector.batch.position"].(int64) < int64(last) {
				t.Errorf("batch position %v, before its last event at %d", a["projector.batch.position"], last)
			}
			var in int64
			for _, e := range events {
				if e.Position.Commit >= first && e.Position.Commit <= last {
					in++
					if applied[e.Position.Commit] {
						t.Errorf("event at %d in two committed batch spans", e.Position.Commit)
					}
					applied[e.Position.Commit] = true
				}
			}
			if in != n {
				t.Errorf("committed batch span %d..%d says %d events, the log has %d there", first, last, n, in)
			}
		case "rolled_back":
			rolledBack++
			if s.Status.Code.String() != "Error" || len(s.Events) == 0 || s.Events[0].Name != "exception" {
				t.Errorf("rolled-back span: status %v, events %v", s.Status, s.Events)
			} else if msg := fmt.Sprint(s.Events[0].Attributes); !strings.Contains(msg, "the kennel is full") {
				t.Errorf("rolled-back span records %s", msg)
			}
		default:
			t.Errorf("batch span outcome %v", a["projector.batch.outcome"])
		}
	}
	if len(applied) != len(events) {
		t.Errorf("committed batch spans cover %d of the %d events", len(applied), len(events))
	}
	if rolledBack == 0 {
		t.Error("no rolled-back batch span for the failing event")
	}
}

// A wait request is a projector.wait span, the child of the caller's traceparent, with the
// requested position and its outcome, linked to the batch span that released it.
func TestTracingWaitSpan(t *testing.T) {
	log, exp, base := tracedDaemon(t, 0)
	first := log.Append("dog0", tracedTopic, nil)
	if code := waitRequest(t, base, first.Position.Commit, "20s", trace.SpanContext{}); code != http.StatusOK {
		t.Fatalf("wait: %d", code)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 7}, TraceFlags: trace.FlagsSampled, Remote: true})
	next := log.Next()
	answered := make(chan int, 1)
	go func() { answered <- waitRequest(t, base, next, "20s", parent) }()
	log.Append("dog1", tracedTopic, nil)
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("wait for %d: %d", next, code)
	}
	if code := waitRequest(t, base, next+1_000_000, "50ms", parent); code != http.StatusGatewayTimeout {
		t.Fatalf("wait past the head: %d", code)
	}

	// A wait span ends once its answer is written: the client may read it a moment before.
	poll.Until(t, 5*time.Second, "three wait spans", func() bool { return len(spansNamed(exp, tracing.SpanWait)) == 3 })
	var released, timedOut tracetest.SpanStub
	for _, s := range spansNamed(exp, tracing.SpanWait) {
		switch a := attrs(s); {
		case a["projector.wait.position"] == int64(next):
			released = s
		case a["projector.wait.outcome"] == "timeout":
			timedOut = s
		}
	}
	a := attrs(released)
	if a["projector.projection"] != "dogs" || a["projector.wait.position"] != int64(next) || a["projector.wait.outcome"] != "done" {
		t.Errorf("wait span attributes %v", a)
	}
	if released.Parent.SpanID() != parent.SpanID() || released.SpanContext.TraceID() != parent.TraceID() {
		t.Errorf("wait span parent %v in trace %v, want %v in %v", released.Parent.SpanID(), released.SpanContext.TraceID(), parent.SpanID(), parent.TraceID())
	}
	if len(released.Links) != 1 {
		t.Fatalf("wait span links %v, want the batch that released it", released.Links)
	}
	var linked *tracetest.SpanStub
	for _, s := range spansNamed(exp, tracing.SpanBatch) {
		if s.SpanContext.SpanID() == released.Links[0].SpanContext.SpanID() {
			linked = &s
		}
	}
	if linked == nil {
		t.Fatal("the wait span links to no exported batch span")
	}
	if la := attrs(*linked); la["projector.batch.outcome"] != "committed" || la["projector.batch.last_position"] != int64(next) {
		t.Errorf("the wait span links to the batch %v, want the committed one of the event at %d", la, next)
	}
	if ta := attrs(timedOut); ta["projector.wait.outcome"] != "timeout" || len(timedOut.Links) != 0 || ta["projector.wait.reached"] != int64(next) {
		t.Errorf("timed-out wait span: %v, links %v", ta, timedOut.Links)
	}
}
