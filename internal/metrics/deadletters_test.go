package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/projection"
)

func TestDeadLettersGaugeCountedAtScrapeTime(t *testing.T) {
	src := &fakeSource{statuses: []projection.Status{{Name: "dogs"}, {Name: "cats"}}}
	m := metrics.New(src, func() time.Time { return now })
	counts := map[string]int64{"dogs": 3, "gone": 9}
	var fail error
	m.CountDeadLetters(src, func(ctx context.Context) (map[string]int64, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the count runs without a deadline")
		}
		return counts, fail
	})
	got := gather(t, m)
	if got[`projector_dead_letters{projection=dogs}`] != 3 {
		t.Errorf("dogs = %v", got[`projector_dead_letters{projection=dogs}`])
	}
	if v, ok := got[`projector_dead_letters{projection=cats}`]; !ok || v != 0 {
		t.Errorf("cats = %v (present %v), want 0", v, ok)
	}
	if _, ok := got[`projector_dead_letters{projection=gone}`]; ok {
		t.Error("a projection the daemon does not run is exported")
	}
	counts["dogs"] = 1 // a replay removed two
	if got := gather(t, m)[`projector_dead_letters{projection=dogs}`]; got != 1 {
		t.Errorf("after the replay dogs = %v, want 1", got)
	}
	fail = errors.New("PostgreSQL down")
	for k := range gather(t, m) {
		if k == `projector_dead_letters{projection=dogs}` || k == `projector_dead_letters{projection=cats}` {
			t.Errorf("%s exported while the count fails", k)
		}
	}
}

func TestProcessedReadsTheCounter(t *testing.T) {
	m := metrics.New(&fakeSource{}, nil)
	m.Observer().BatchCommitted(projection.CommittedBatch{Projection: "dogs", Events: 7, Duration: time.Millisecond})
	m.Observer().BatchCommitted(projection.CommittedBatch{Projection: "dogs", Events: 5, Duration: time.Millisecond})
	if got := m.Processed("dogs"); got != 12 {
		t.Errorf("Processed(dogs) = %v, want 12", got)
	}
	if got := m.Processed("cats"); got != 0 {
		t.Errorf("Processed(cats) = %v, want 0", got)
	}
}
