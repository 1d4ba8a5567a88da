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

	mu   sync.Mutex
	open map[string]trace.Span // the span of each projection's transaction in progress
}

// TransactionStarted implements projection.TransactionObserver: it starts the transaction's
// span and counts it among the batches that may release waits, before its commit can be seen.
func (o *batchObserver) TransactionStarted(s projection.Transaction) {
	attrs := []attribute.KeyValue{
		AttrProjection.String(s.Projection),
		AttrBatchEvents.Int(s.Events),
		AttrBatchPosition.Int64(int64(s.State.Reached())),
	}
	if s.Events > 0 {
		attrs = append(attrs, AttrBatchFirst.Int64(int64(s.First.Commit)), AttrBatchLast.Int64(int64(s.Last.Commit)))
	}
	_, span := o.t.tracer.Start(context.Background(), SpanBatch, trace.WithTimestamp(s.Start),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	o.mu.Lock()
	if prev := o.open[s.Projection]; prev != nil { // not ended: end it rather than leak it
		prev.End()
	}
	o.open[s.Projection] = span
	o.mu.Unlock()
	o.t.releases.add(s.Projection, s.State, span.SpanContext())
}

// TransactionEnded implements projection.TransactionObserver: it ends the transaction's span
// with its outcome (and error), and forgets a transaction that did not commit.
func (o *batchObserver) TransactionEnded(e projection.EndedTransaction) {
	o.mu.Lock()
	span := o.open[e.Projection]
	delete(o.open, e.Projection)
	o.mu.Unlock()
	if span == nil {
		return
	}
	span.SetAttributes(AttrBatchOutcome.String(string(e.Outcome)))
	if e.Err != nil {
		span.RecordError(e.Err)
		span.SetStatus(codes.Error, string(e.Outcome))
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
	if e.Outcome != projection.OutcomeCommitted {
		o.t.releases.remove(e.Projection, span.SpanContext())
	}
}

// releasesKept is how many committed batches are kept per projection for the waits' links.
const releasesKept = 256

// releases keeps, per projection, the last batches committed or committing: the tracking state
// each commits and its span, so that a wait links to the batch that released it.
type releases struct {
	mu sync.Mutex
	by map[string][]release
	// dropped tells, per projection, that older batches were forgotten: the first batch kept
	// may not be the first that reached a position.
	dropped map[string]bool
}

type release struct {
	state tracking.State
	span  trace.SpanContext
}

func newReleases() *releases {
	return &releases{by: map[string][]release{}, dropped: map[string]bool{}}
}

// add records a committed batch of name. A state behind the last one (a reset rewound the
// projection) forgets the batches before it.
func (r *releases) add(name string, st tracking.State, sc trace.SpanContext) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.by[name]
	if n := len(rs); n > 0 && st.Reached() < rs[n-1].state.Reached() {
		rs, r.dropped[name] = rs[:0], false
	}
	if len(rs) == releasesKept {
		rs, r.dropped[name] = append(rs[:0], rs[1:]...), true
	}
	r.by[name] = append(rs, release{state: st, span: sc})
}

// remove forgets the batch of name whose span is sc (it did not commit).
func (r *releases) remove(name string, sc trace.SpanContext) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.by[name]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].span.Equal(sc) {
			r.by[name] = append(rs[:i], rs[i+1:]...)
			return
		}
	}
}

// first returns the span of the first batch of name whose state has processed position; ok is
// false when no batch kept has, or when that batch may have been forgotten.
func (r *releases) first(name string, position uint64) (trace.SpanContext, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, rel := range r.by[name] {
		if rel.state.Done(position) {
			if i == 0 && r.dropped[name] {
				return trace.SpanContext{}, false
			}
			return rel.span, true
		}
	}
	return trace.SpanContext{}, false
}
