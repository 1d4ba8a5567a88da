package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/projector-dev/projector/tracking"
)

// WaitOutcome is how a wait request ended, as the wait span's projector.wait.outcome says.
type WaitOutcome string

// The outcomes of a wait request.
const (
	WaitDone      WaitOutcome = "done"      // the projection processed the position (200)
	WaitTimeout   WaitOutcome = "timeout"   // the timeout passed first (504)
	WaitRefused   WaitOutcome = "refused"   // the most waits at once were in progress (503)
	WaitCancelled WaitOutcome = "cancelled" // the client went away
	WaitFailed    WaitOutcome = "failed"    // the wait failed (an unknown projection, the store)
)

// WaitSpan is the span of one wait request.
type WaitSpan struct {
	t          *Tracing
	span       trace.Span
	projection string
	position   uint64
}

// StartWait starts the span of a wait for projection to process position within timeout, as a
// child of the trace context in ctx (see Handler).
func (t *Tracing) StartWait(ctx context.Context, projection string, position uint64, timeout time.Duration) (context.Context, *WaitSpan) {
	ctx, span := t.tracer.Start(ctx, SpanWait, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		AttrProjection.String(projection),
		AttrWaitPosition.Int64(int64(position)),
		AttrWaitTimeout.Int64(timeout.Milliseconds()),
	))
	return ctx, &WaitSpan{t: t, span: span, projection: projection, position: position}
}

// End ends the span with outcome, the state the projection had reached and the error of a
// wait that failed. A wait that was done links to the batch that released it: the first
// committed batch (of this process) whose tracking reached the position.
func (w *WaitSpan) End(outcome WaitOutcome, reached tracking.State, err error) {
	if !w.span.IsRecording() {
		return
	}
	w.span.SetAttributes(AttrWaitOutcome.String(string(outcome)), AttrWaitReached.Int64(int64(reached.Reached())))
	if outcome == WaitDone {
		if sc, ok := w.t.releases.first(w.projection, w.position); ok {
			w.span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{AttrLinkRelease.String("released_by")}})
		}
	}
	if err != nil && outcome != WaitTimeout {
		w.span.RecordError(err)
	}
	if outcome == WaitFailed {
		w.span.SetStatus(codes.Error, string(outcome))
	}
	w.span.End()
}
