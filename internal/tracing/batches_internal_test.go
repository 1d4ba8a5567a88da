package tracing

import (
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/projector-dev/projector/tracking"
)

func spanOf(n byte) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{n}})
}

func at(commit uint64) tracking.State {
	return tracking.State{Last: tracking.Position{Commit: commit, Prepare: commit}}
}

// A wait links to the first batch that reached its position; not to one that did not commit,
// nor to the first batch kept once older ones were forgotten; a reset starts afresh.
func TestReleasesFirst(t *testing.T) {
	r := newReleases()
	r.add("dogs", at(100), spanOf(1))
	r.add("dogs", at(200), spanOf(2))
	r.add("dogs", at(300), spanOf(3))
	r.remove("dogs", spanOf(2)) // rolled back
	for _, c := range []struct {
		position uint64
		want     trace.SpanContext
		ok       bool
	}{{50, spanOf(1), true}, {100, spanOf(1), true}, {150, spanOf(3), true}, {300, spanOf(3), true}, {301, trace.SpanContext{}, false}} {
		got, ok := r.first("dogs", c.position)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("first(%d) = %v %v, want %v %v", c.position, got.SpanID(), ok, c.want.SpanID(), c.ok)
		}
	}
	if _, ok := r.first("cats", 1); ok {
		t.Error("a batch of another projection")
	}
	for i := range releasesKept {
		r.add("dogs", at(uint64(400+i)), spanOf(4))
	}
	if _, ok := r.first("dogs", 100); ok {
		t.Error("linked to the oldest batch kept, which may not be the first that reached 100")
	}
	if got, ok := r.first("dogs", 400+releasesKept-1); !ok || !got.Equal(spanOf(4)) {
		t.Errorf("the newest batch: %v %v", got, ok)
	}
	r.add("dogs", at(10), spanOf(5)) // a reset rewound the projection
	if got, ok := r.first("dogs", 5); !ok || !got.Equal(spanOf(5)) {
		t.Errorf("after a reset: %v %v", got, ok)
	}
}
