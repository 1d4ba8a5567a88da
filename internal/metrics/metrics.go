// Package metrics exposes Projector's Prometheus metrics. Counters and histograms are fed by
// an Observer the runner reports to; the gauges (position, head, lag, caught-up, leader, last
// progress, parked streams) are read at scrape time from a status source, so they are never stale. Each daemon
// has its own registry; nothing is registered globally.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/projector-dev/projector/projection"
)

// The metric names; dashboards and alerts rely on them.
const (
	EventsProcessed      = "projector_events_processed_total"
	EventsDeadLettered   = "projector_events_dead_lettered_total"
	Batches              = "projector_batches_total"
	BatchDuration        = "projector_batch_duration_seconds"
	BatchEvents          = "projector_batch_events"
	Position             = "projector_position"
	HeadPosition         = "projector_head_position"
	LagPositions         = "projector_lag_positions"
	LagSeconds           = "projector_lag_seconds"
	CaughtUp             = "projector_caught_up"
	Leader               = "projector_leader"
	Errors               = "projector_errors_total"
	SubscriptionRestarts = "projector_subscription_restarts_total"
	LastProgress         = "projector_last_progress_timestamp_seconds"
	WaitDuration         = "projector_wait_duration_seconds"
	DeadLetters          = "projector_dead_letters"
	Members              = "projector_members"
	ParkedStreams        = "projector_parked_streams"
)

// MembersSource is implemented by a Source that knows the live members of its scale-out group.
type MembersSource interface {
	// Members returns how many members are live; ok is false until known.
	Members() (n int, ok bool)
}

// Source gives the scrape-time state of the daemon's projections.
type Source interface {
	// Statuses returns the current status of every projection.
	Statuses() []projection.Status
	// Head returns the last known commit position of the end of $all; ok is false until known.
	Head() (position uint64, ok bool)
}

// Metrics holds a daemon's registry and its counters and histograms.
type Metrics struct {
	reg           *prometheus.Registry
	processed     *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	batches       *prometheus.CounterVec
	batchDuration *prometheus.HistogramVec
	batchEvents   *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	restarts      *prometheus.CounterVec
	waitDuration  *prometheus.HistogramVec
}

// New returns the metrics of one daemon, registered in a new registry together with the Go and
// process collectors and a collector of the gauges that reads src at scrape time.
func New(src Source, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	p := []string{"projection"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: EventsProcessed,
			Help: "Events applied to the projection's view and committed."}, p),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: EventsDeadLettered,
			Help: "Events written to the dead-letter table and skipped (policy skip)."}, p),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Batches,
			Help: "Transactions committed (batches of events, or checkpoint-only advances)."}, p),
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: BatchDuration,
			Help:    "Time from a batch's first handler call to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, p),
		batchEvents: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: BatchEvents,
			Help:    "Events per committed batch.",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}}, p),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: Errors,
			Help: "Errors by kind: handler (an event failed), source (KurrentDB), store (PostgreSQL), conflict (tracking moved under us), leadership."},
			[]string{"projection", "kind"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: SubscriptionRestarts,
			Help: "Times the projection's subscription ended with an error and was restarted."}, p),
		waitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: WaitDuration,
			Help:    "Time wait requests took to be answered (processed or timed out).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, p),
	}
	m.reg.MustRegister(m.processed, m.deadLettered, m.batches, m.batchDuration, m.batchEvents,
		m.errors, m.restarts, m.waitDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&gauges{src: src, now: now})
	return m
}

// Registry returns the daemon's registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Declare makes the per-projection series of name exist (at zero) before any event, so that
// rates and alerts see them from the first scrape.
func (m *Metrics) Declare(name string) {
	m.processed.WithLabelValues(name)
	m.deadLettered.WithLabelValues(name)
	m.batches.WithLabelValues(name)
	m.restarts.WithLabelValues(name)
	for _, kind := range []string{"handler", "source", "store", "conflict", "leadership"} {
		m.errors.WithLabelValues(name, kind)
	}
}

// ObserveWait records the duration of a wait request for projection.
func (m *Metrics) ObserveWait(projection string, d time.Duration) {
	m.waitDuration.WithLabelValues(projection).Observe(d.Seconds())
}

// Observer returns the projection.Observer that feeds the counters and histograms.
func (m *Metrics) Observer() projection.Observer { return observer{m} }

type observer struct{ m *Metrics }

func (o observer) BatchCommitted(b projection.CommittedBatch) {
	o.m.batches.WithLabelValues(b.Projection).Inc()
	o.m.processed.WithLabelValues(b.Projection).Add(float64(b.Events))
	o.m.batchDuration.WithLabelValues(b.Projection).Observe(b.Duration.Seconds())
	o.m.batchEvents.WithLabelValues(b.Projection).Observe(float64(b.Events))
}

func (o observer) EventFailed(f projection.FailedEvent) {
	o.m.errors.WithLabelValues(f.Projection, "handler").Inc()
}

func (o observer) EventDeadLettered(f projection.FailedEvent) {
	o.m.deadLettered.WithLabelValues(f.Projection).Inc()
}

func (o observer) Error(f projection.Fault) {
	o.m.errors.WithLabelValues(f.Projection, f.Kind).Inc()
}

func (o observer) SubscriptionRestarted(f projection.Fault) {
	o.m.restarts.WithLabelValues(f.Projection).Inc()
}

func (o observer) StateChanged(projection.StateChange) {}

// gauges reads the scrape-time gauges from a Source.
type gauges struct {
	src Source
	now func() time.Time
}

var (
	descPosition = prometheus.NewDesc(Position, "Commit position the projection has processed (inclusive; filtered regions count as processed).", []string{"projection"}, nil)
	descHead     = prometheus.NewDesc(HeadPosition, "Last known commit position of the end of $all.", nil, nil)
	descLagPos   = prometheus.NewDesc(LagPositions, "Head position minus the projection's position; 0 when caught up with nothing pending.", []string{"projection"}, nil)
	descLagSec   = prometheus.NewDesc(LagSeconds, "Age of the oldest event delivered to the projection and not yet committed; 0 when none is pending.", []string{"projection"}, nil)
	descCaughtUp = prometheus.NewDesc(CaughtUp, "1 when the projection has caught up with the log and committed everything delivered.", []string{"projection"}, nil)
	descLeader   = prometheus.NewDesc(Leader, "1 when this instance leads (runs) the projection, 0 on a standby.", []string{"projection"}, nil)
	descProgress = prometheus.NewDesc(LastProgress, "Unix time of the projection's last commit.", []string{"projection"}, nil)
	descParked   = prometheus.NewDesc(ParkedStreams, "Streams the projection has parked (error policy park), on the replica that leads it; 0 on a standby.", []string{"projection"}, nil)
	descMembers  = prometheus.NewDesc(Members, "Live replicas (members) of the scale-out group, as this instance last read the membership table.", nil, nil)
)

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPosition, descHead, descLagPos, descLagSec, descCaughtUp, descLeader, descProgress, descParked, descMembers} {
		ch <- d
	}
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	head, haveHead := g.src.Head()
	if haveHead {
		ch <- prometheus.MustNewConstMetric(descHead, prometheus.GaugeValue, float64(head))
	}
	if ms, ok := g.src.(MembersSource); ok {
		if n, known := ms.Members(); known {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n))
		}
	}
	now := g.now()
	for _, s := range g.src.Statuses() {
		l := s.Name
		ch <- prometheus.MustNewConstMetric(descPosition, prometheus.GaugeValue, float64(s.Position), l)
		lag := s.Lag(head, haveHead, now)
		if haveHead {
			ch <- prometheus.MustNewConstMetric(descLagPos, prometheus.GaugeValue, float64(lag.Positions), l)
		}
		ch <- prometheus.MustNewConstMetric(descLagSec, prometheus.GaugeValue, lag.Seconds, l)
		ch <- prometheus.MustNewConstMetric(descCaughtUp, prometheus.GaugeValue, b2f(s.CaughtUp), l)
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, b2f(s.Leader), l)
		ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(s.ParkedStreams), l)
		if !s.LastProgress.IsZero() {
			ch <- prometheus.MustNewConstMetric(descProgress, prometheus.GaugeValue, float64(s.LastProgress.UnixNano())/1e9, l)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
