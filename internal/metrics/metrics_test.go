package metrics_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

type fakeSource struct {
	mu       sync.Mutex
	statuses []projection.Status
	head     uint64
	haveHead bool
}

func (f *fakeSource) Statuses() []projection.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]projection.Status(nil), f.statuses...)
}

func (f *fakeSource) Head() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head, f.haveHead
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// gather returns the value of every sample as "name{label=value,...}" → value.
func gather(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName() + labels(mt)
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = mt.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(mt.GetHistogram().GetSampleCount())
				out[key+"_sum"] = mt.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestObserverCountersAndHistograms(t *testing.T) {
	m := metrics.New(&fakeSource{}, func() time.Time { return now })
	m.Declare("dogs")
	o := m.Observer()
	st := tracking.State{Last: tracking.Position{Commit: 10, Prepare: 10}}
	o.BatchCommitted(projection.CommittedBatch{Projection: "dogs", Events: 3, Duration: 20 * time.Millisecond, State: st})
	o.BatchCommitted(projection.CommittedBatch{Projection: "dogs", Events: 0, Duration: 5 * time.Millisecond, State: st})
	o.EventFailed(projection.FailedEvent{Projection: "dogs", Err: errors.New("boom"), Policy: projection.PolicySkip})
	o.EventDeadLettered(projection.FailedEvent{Projection: "dogs", Err: errors.New("boom"), Policy: projection.PolicySkip})
	o.Error(projection.Fault{Projection: "dogs", Kind: "source", Err: errors.New("down")})
	o.SubscriptionRestarted(projection.Fault{Projection: "dogs", Kind: "subscription", Err: errors.New("down")})
	m.ObserveWait("dogs", 250*time.Millisecond)
	got := gather(t, m)
	for k, want := range map[string]float64{
		`projector_events_processed_total{projection=dogs}`:      3,
		`projector_batches_total{projection=dogs}`:               2,
		`projector_batch_duration_seconds{projection=dogs}_sum`:  0.025,
		`projector_batch_events{projection=dogs}_count`:          2,
		`projector_batch_events{projection=dogs}_sum`:            3,
		`projector_events_dead_lettered_total{projection=dogs}`:  1,
		`projector_errors_total{kind=handler,projection=dogs}`:   1,
		`projector_errors_total{kind=source,projection=dogs}`:    1,
		`projector_subscription_restarts_total{projection=dogs}`: 1,
		`projector_wait_duration_seconds{projection=dogs}_sum`:   0.25,
	} {
		if v, ok := got[k]; !ok || v < want-1e-9 || v > want+1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go collector")
	}
}

func TestScrapeTimeGauges(t *testing.T) {
	src := &fakeSource{head: 1000, haveHead: true, statuses: []projection.Status{
		// Catching up: 2 minutes behind, 600 positions behind the head.
		{Name: "behind", State: projection.StateCatchingUp, Leader: true, Position: 400,
			OldestPending: now.Add(-2 * time.Minute), LastProgress: now.Add(-time.Second), ParkedStreams: 3},
		// Caught up and idle, with the head past it through events it filters out: no lag.
		{Name: "idle", State: projection.StateLive, Leader: true, CaughtUp: true, Position: 900},
		// A standby.
		{Name: "standby", State: projection.StateStandby, Position: 700},
	}}
	m := metrics.New(src, func() time.Time { return now })
	got := gather(t, m)
	for k, want := range map[string]float64{
		`projector_head_position`:                                      1000,
		`projector_position{projection=behind}`:                        400,
		`projector_lag_positions{projection=behind}`:                   600,
		`projector_lag_seconds{projection=behind}`:                     120,
		`projector_caught_up{projection=behind}`:                       0,
		`projector_leader{projection=behind}`:                          1,
		`projector_last_progress_timestamp_seconds{projection=behind}`: float64(now.Add(-time.Second).Unix()),
		`projector_position{projection=idle}`:                          900,
		`projector_lag_positions{projection=idle}`:                     0,
		`projector_lag_seconds{projection=idle}`:                       0,
		`projector_caught_up{projection=idle}`:                         1,
		`projector_leader{projection=standby}`:                         0,
		`projector_parked_streams{projection=behind}`:                  3,
		`projector_parked_streams{projection=idle}`:                    0,
		`projector_lag_positions{projection=standby}`:                  300,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}

	// The gauges follow the source at the next scrape.
	src.mu.Lock()
	src.statuses[0].OldestPending = time.Time{}
	src.statuses[0].CaughtUp = true
	src.statuses[0].Position = 1000
	src.mu.Unlock()
	got = gather(t, m)
	if got[`projector_lag_seconds{projection=behind}`] != 0 || got[`projector_lag_positions{projection=behind}`] != 0 {
		t.Errorf("lag after catching up: %v s, %v positions", got[`projector_lag_seconds{projection=behind}`], got[`projector_lag_positions{projection=behind}`])
	}
}

func TestNoHeadNoHeadGauges(t *testing.T) {
	m := metrics.New(&fakeSource{statuses: []projection.Status{{Name: "a", Position: 5}}}, nil)
	got := gather(t, m)
	if _, ok := got["projector_head_position"]; ok {
		t.Error("head position exported before the head is known")
	}
	if _, ok := got["projector_lag_positions{projection=a}"]; ok {
		t.Error("lag positions exported before the head is known")
	}
	if got["projector_position{projection=a}"] != 5 {
		t.Error("position missing")
	}
}

func TestHandlerServesTheExpositionFormat(t *testing.T) {
	m := metrics.New(&fakeSource{head: 7, haveHead: true}, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"projector_head_position 7", "process_cpu_seconds_total", "go_goroutines"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
}

// Two daemons in one process have registries of their own.
func TestRegistriesAreSeparate(t *testing.T) {
	a := metrics.New(&fakeSource{}, nil)
	b := metrics.New(&fakeSource{}, nil)
	a.Observer().BatchCommitted(projection.CommittedBatch{Projection: "x", Events: 1, Duration: time.Millisecond})
	if _, ok := gather(t, b)["projector_events_processed_total{projection=x}"]; ok {
		t.Error("b sees a's counter")
	}
}
