package tracing_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// BenchmarkBatchSpan is the cost tracing adds to one store transaction: its span, started and
// ended, and its place among the batches that release waits (exported in batches to an
// exporter that keeps nothing).
func BenchmarkBatchSpan(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	tr := tracing.New(tp)
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	obs := tr.Observer().(projection.TransactionObserver)
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n += 100
		tx := projection.Transaction{Projection: "dogs", Events: 100, First: tracking.Position{Commit: n - 99}, Last: tracking.Position{Commit: n},
			State: tracking.State{Last: tracking.Position{Commit: n}}, Start: time.Now()}
		obs.TransactionStarted(tx)
		obs.TransactionEnded(projection.EndedTransaction{Transaction: tx, Duration: time.Millisecond, Outcome: projection.OutcomeCommitted})
	}
}
