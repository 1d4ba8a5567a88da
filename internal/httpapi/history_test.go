package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

func TestHistorySamplesLagAndRates(t *testing.T) {
	f := &fake{head: 1000, statuses: []projection.Status{{Name: "dogs", State: projection.StateCatchingUp, Leader: true, Position: 100}}}
	clock := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	processed := 0.0
	h := httpapi.NewHistory(f, httpapi.HistoryOptions{Every: 5 * time.Second, Size: 3, Now: func() time.Time { return clock },
		Processed: func(name string) float64 {
			if name != "dogs" {
				t.Errorf("processed asked for %q", name)
			}
			return processed
		}})
	for _, step := range []struct {
		position  uint64
		processed float64
	}{{100, 0}, {300, 50}, {800, 150}, {1000, 175}} {
		f.mu.Lock()
		f.statuses[0].Position = step.position
		f.mu.Unlock()
		processed = step.processed
		h.Sample()
		clock = clock.Add(5 * time.Second)
	}
	pts := h.JSON().Projections["dogs"]
	if len(pts) != 3 {
		t.Fatalf("points = %+v, want the last 3", pts)
	}
	// The oldest point kept has no rate (nothing before it is kept).
	want := []httpapi.PointJSON{
		{Position: 300, Lag: 700},
		{Position: 800, Lag: 200, EventsPerSecond: 20, PositionsPerSecond: 100},
		{Position: 1000, Lag: 0, EventsPerSecond: 5, PositionsPerSecond: 40},
	}
	for i, w := range want {
		got := pts[i]
		got.At = time.Time{}
		if got != w {
			t.Errorf("point %d = %+v, want %+v", i, got, w)
		}
	}
	if at := pts[2].At; !at.Equal(time.Date(2026, 12, 3, 9, 0, 15, 0, time.UTC)) {
		t.Errorf("last point at %v", at)
	}
	// A rewind (reset) shows no negative rate.
	f.mu.Lock()
	f.statuses[0].Position = 0
	f.mu.Unlock()
	h.Sample()
	pts = h.JSON().Projections["dogs"]
	if last := pts[len(pts)-1]; last.PositionsPerSecond != 0 {
		t.Errorf("after a rewind: %+v, want no positions rate", last)
	}
}

func TestHistoryRunSamplesUntilItsContextEnds(t *testing.T) {
	f := &fake{statuses: []projection.Status{{Name: "dogs", State: projection.StateLive}}}
	h := httpapi.NewHistory(f, httpapi.HistoryOptions{Every: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	for len(h.JSON().Projections["dogs"]) < 3 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Provider: f, Waiter: &tracking.Watermark{}, History: h}))
	defer srv.Close()
	var got httpapi.HistoryJSON
	if code, body := get(t, srv.URL+"/v1/history", &got); code != http.StatusOK || len(got.Projections["dogs"]) < 3 || got.IntervalSeconds != 0.001 {
		t.Errorf("GET /v1/history = %d %s", code, body)
	}
}
