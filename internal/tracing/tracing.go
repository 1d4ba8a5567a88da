// Package tracing gives the daemon OpenTelemetry traces: a span per store transaction of a
// projection (projector.batch) and a span per wait request of the HTTP API (projector.wait),
// linked to the batch that released it. It is configured by the standard OTEL_* environment
// variables and is off (a no-op tracer: no exporter, no goroutine) unless one of them asks for
// an exporter.
package tracing

import (
	"context"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/projector-dev/projector/internal/version"
	"github.com/projector-dev/projector/projection"
)

// instrumentation is the name of the tracer, as it appears in the exported scope.
const instrumentation = "github.com/projector-dev/projector"

// Tracing makes the daemon's spans. Off (Off, or FromEnv without OTEL settings) it makes
// non-recording spans and starts nothing. Its methods are safe for concurrent use.
type Tracing struct {
	enabled    bool
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	shutdown   func(ctx context.Context) error
	releases   *releases
}

// Off returns tracing that is off: a no-op tracer.
func Off() *Tracing {
	return &Tracing{tracer: noop.NewTracerProvider().Tracer(instrumentation), propagator: propagation.TraceContext{},
		shutdown: func(context.Context) error { return nil }, releases: newReleases()}
}

// New returns tracing that makes its spans with tp, and shuts tp down (flushing what it
// holds) on Shutdown.
func New(tp *sdktrace.TracerProvider) *Tracing {
	return &Tracing{
		enabled:    true,
		tracer:     tp.Tracer(instrumentation, trace.WithInstrumentationVersion(version.Version)),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown:   tp.Shutdown,
		releases:   newReleases(),
	}
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.enabled }

// Shutdown ends the tracer provider, exporting the spans it still holds, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Observer returns the projection.Observer (a projection.TransactionObserver) that makes a
// span per store transaction; nil when tracing is off, so that nothing is added to a runner.
func (t *Tracing) Observer() projection.Observer {
	if !t.enabled {
		return nil
	}
	return &batchObserver{t: t, open: map[string]trace.Span{}}
}

// Handler returns h continuing the W3C trace context (traceparent, tracestate, baggage) of
// each request, so that the spans a request makes are children of the caller's span; h
// itself when tracing is off.
func (t *Tracing) Handler(h http.Handler) http.Handler {
	if !t.enabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
