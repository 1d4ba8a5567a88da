package trainingschool_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
)

// BenchmarkReadYourWrites measures live read-your-writes: a writer appends one event to the
// emulator (over gRPC) and waits until the PostgreSQL view has committed it (the store's Wait,
// which another process would use too), while the runner is live with its default options.
// It reports the median and 99th percentile of that round trip.
func BenchmarkReadYourWrites(b *testing.B) {
	e := newEnv(b)
	first := e.fill(b, "dog ", 1, 0)
	r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), e.store, projection.Options{})
	if err := r.Add(trainingschool.PostgresCounts(), projection.ProjectionOptions{}); err != nil {
		b.Fatal(err)
	}
	run(b, r)
	waitFor(b, e.store, first)
	ctx := context.Background()
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		p, err := e.school.Register(ctx, fmt.Sprint("live dog ", i))
		if err != nil {
			b.Fatal(err)
		}
		waitFor(b, e.store, p)
		latencies = append(latencies, time.Since(began))
	}
	b.StopTimer()
	slices.Sort(latencies)
	quantile := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(quantile(0.50), "p50-ms")
	b.ReportMetric(quantile(0.99), "p99-ms")
}
