package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// DeadLetterCounter counts the dead letters present in the store, by projection (projections
// without any may be absent).
type DeadLetterCounter func(ctx context.Context) (map[string]int64, error)

// countTimeout bounds the count a scrape runs.
const countTimeout = 2 * time.Second

var descDeadLetters = prometheus.NewDesc(DeadLetters, "Dead letters present in projector_dead_letters (written by policy skip, removed by replay or purge).", []string{"projection"}, nil)

// CountDeadLetters adds the gauge projector_dead_letters, counted at scrape time through count:
// one series per projection src reports (0 for those without dead letters), none while count
// fails (before the daemon has connected to PostgreSQL, or while it is unreachable).
func (m *Metrics) CountDeadLetters(src Source, count DeadLetterCounter) {
	m.reg.MustRegister(&deadLetterGauge{src: src, count: count})
}

type deadLetterGauge struct {
	src   Source
	count DeadLetterCounter
}

func (g *deadLetterGauge) Describe(ch chan<- *prometheus.Desc) { ch <- descDeadLetters }

func (g *deadLetterGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
	defer cancel()
	counts, err := g.count(ctx)
	if err != nil {
		return
	}
	for _, s := range g.src.Statuses() {
		ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.GaugeValue, float64(counts[s.Name]), s.Name)
	}
}

// Processed returns how many events projection has applied since the daemon started (the
// value of projector_events_processed_total).
func (m *Metrics) Processed(projection string) float64 {
	var d dto.Metric
	if err := m.processed.WithLabelValues(projection).Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}
