package tracing_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Without the OTEL variables that ask for an exporter, tracing is off: no exporter, no
// goroutine, no observer for the runner, and wait spans that record nothing.
func TestOffWithoutVariables(t *testing.T) {
	cases := map[string]map[string]string{
		"none set":               {},
		"only a service name":    {"OTEL_SERVICE_NAME": "orders", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"SDK disabled":           {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"SDK disabled, any case": {"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"},
		"exporter none":          {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
	}
	for name, vars := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			tr, err := tracing.FromEnv(context.Background(), env(vars), &out)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Enabled() {
				t.Fatal("tracing is enabled")
			}
			if obs := tr.Observer(); obs != nil {
				t.Fatalf("Observer() = %T, want nil (nothing added to the runner)", obs)
			}
			ctx, span := tr.StartWait(context.Background(), "dogs", 10, time.Second)
			span.End(tracing.WaitDone, tracking.State{}, nil)
			if got := trace.SpanContextFromContext(ctx); got.IsValid() {
				t.Fatalf("a wait span has a valid span context %v: it records", got)
			}
			goleak.VerifyNone(t) // no exporter, no batch processor
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Fatalf("exported %q", out.String())
			}
		})
	}
}

// OTEL_TRACES_EXPORTER=console exports the spans as JSON, flushed by Shutdown, which ends the
// goroutines tracing started.
func TestConsoleExporterFromEnv(t *testing.T) {
	var out bytes.Buffer
	tr, err := tracing.FromEnv(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing is off")
	}
	obs, ok := tr.Observer().(projection.TransactionObserver)
	if !ok {
		t.Fatalf("Observer() = %T, not a projection.TransactionObserver", tr.Observer())
	}
	tx := projection.Transaction{Projection: "dogs", Events: 1, Start: time.Now(), State: tracking.State{Last: tracking.Position{Commit: 7, Prepare: 7}}}
	obs.TransactionStarted(tx)
	obs.TransactionEnded(projection.EndedTransaction{Transaction: tx, Duration: time.Millisecond, Outcome: projection.OutcomeCommitted})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
	for _, want := range []string{`"Name":"projector.batch"`, `"projector.projection"`, `"dogs"`, `"service.name"`, `"projector"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output has no %s:\n%s", want, out.String())
		}
	}
}

// An OTLP endpoint alone turns the OTLP exporter on (it connects lazily).
func TestEndpointTurnsOTLPOn(t *testing.T) {
	for _, protocol := range []string{"", "http/protobuf", "grpc"} {
		tr, err := tracing.FromEnv(context.Background(), env(map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}), nil)
		if err != nil {
			t.Fatalf("protocol %q: %v", protocol, err)
		}
		if !tr.Enabled() {
			t.Fatalf("protocol %q: tracing is off", protocol)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = tr.Shutdown(ctx) // nothing to export: no connection is needed
		cancel()
	}
}

// A value tracing does not know is an error naming the variable and the value.
func TestUnknownValues(t *testing.T) {
	cases := []struct {
		vars map[string]string
		want []string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, []string{"OTEL_TRACES_EXPORTER", `"zipkin"`, "otlp, console or none"}},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", `"http/json"`, "grpc"}},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}, []string{"OTEL_EXPORTER_OTLP_PROTOCOL", `"udp"`}},
	}
	for _, c := range cases {
		_, err := tracing.FromEnv(context.Background(), env(c.vars), nil)
		if err == nil {
			t.Fatalf("%v: no error", c.vars)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %s", c.vars, err, w)
			}
		}
	}
}
