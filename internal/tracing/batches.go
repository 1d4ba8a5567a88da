package tracing

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// The span names.
const (
	// SpanBatch is the span of one store transaction of a projection.
	SpanBatch = "projector.batch"
	// SpanWait is the span of one wait request of the HTTP API.
	SpanWait = "projector.wait"
)

// The attributes of the spans (positions are commit positions of $all).
const (
	AttrProjection    = attribute.Key("projector.projection")
	AttrBatchEvents   = attribute.Key("projector.batch.events")
	AttrBatchFirst    = attribute.Key("projector.batch.first_position")
	AttrBatchLast     = attribute.Key("projector.batch.last_position")
	AttrBatchPosition = attribute.Key("projector.batch.position")
	AttrBatchOutcome  = attribute.Key("projector.batch.outcome")
	AttrWaitPosition  = attribute.Key("projector.wait.position")
	AttrWaitReached   = attribute.Key("projector.wait.reached")
	AttrWaitOutcome   = attribute.Key("projector.wait.outcome")
	AttrWaitTimeout   = attribute.Key("projector.wait.timeout_ms")
	AttrLinkRelease   = attribute.Key("projector.link")
)

// batchObserver makes a span per store transaction from the runner's reports.
type batchObserver struct {
	projection.NopObserver
	t *Tracing
}

// TransactionEnded implements projection.TransactionObserver: a span from the transaction's
// start to its end, and, for a committed one, its place among the batches that release waits.
func (o *batchObserver) TransactionEnded(e projection.EndedTransaction) {
	attrs := []attribute.KeyValue{
		AttrProjection.String(e.Projection),
		AttrBatchEvents.Int(e.Events),
		AttrBatchPosition.Int64(int64(e.State.Reached())),
		AttrBatchOutcome.String(string(e.Outcome)),
	}
	if e.Events > 0 {
		attrs = append(attrs, AttrBatchFirst.Int64(int64(e.First.Commit)), AttrBatchLast.Int64(int64(e.Last.Commit)))
	}
	_, span := o.t.tracer.Start(context.Background(), SpanBatch, trace.WithTimestamp(e.Start),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	if e.Err != nil {
		span.RecordError(e.Err)
		span.SetStatus(codes.Error, string(e.Outcome))
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
	if e.Outcome == projection.OutcomeCommitted {
		o.t.releases.add(e.Projection, e.State, span.SpanContext())
	}
}

// releasesKept is how many committed batches are kept per projection for the waits' links.
const releasesKept = 256

// releases keeps, per projection, the last committed batches: the tracking state each
// committed and its span, so that a wait links to the batch that released it.
type releases struct {
	mu sync.Mutex
	by map[string][]release
}

type release struct {
	state tracking.State
	span  trace.SpanContext
}

func newReleases() *releases { return &releases{by: map[string][]release{}} }

// add records a committed batch of name. A state behind the last one (a reset rewound the
// projection) forgets the batches before it.
func (r *releases) add(name string, st tracking.State, sc trace.SpanContext) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.by[name]
	if n := len(rs); n > 0 && st.Reached() < rs[n-1].state.Reached() {
		rs = rs[:0]
	}
	if len(rs) == releasesKept {
		rs = append(rs[:0], rs[1:]...)
	}
	r.by[name] = append(rs, release{state: st, span: sc})
}

// first returns the span of the first batch of name kept whose state has processed
// position; ok is false when none has.
func (r *releases) first(name string, position uint64) (trace.SpanContext, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rel := range r.by[name] {
		if rel.state.Done(position) {
			return rel.span, true
		}
	}
	return trace.SpanContext{}, false
}
