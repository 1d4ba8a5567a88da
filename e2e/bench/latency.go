package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// Latency summarises durations: the nearest-rank 50th and 99th percentiles and the maximum.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	N   int           `json:"n"`
}

// Summarise returns the latency summary of samples (the zero Latency when there are none).
func Summarise(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(i, 0)]
	}
	return Latency{P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1], N: len(s)}
}

// ReadYourWrites measures, rounds times, the time from the start of an append of one event
// the projections handle (a dog's registration) to the answer of the wait API for its commit
// position, for every projection of names (waited on concurrently). The dogs appended are
// latency-first to latency-(first+rounds-1), so runs given different first append to different
// streams. It returns the samples of each projection, of every projection (the slowest of a
// round) and of the appends alone, and the position of the last append.
func ReadYourWrites(ctx context.Context, d *Daemon, client *kurrentdb.Client, names []string, rounds, first int) (RoundSamples, error) {
	s := RoundSamples{Waits: map[string][]time.Duration{}}
	// Event ids must differ from the seeded events', or KurrentDB takes the append for a retry.
	g := generator{idSpace: 1, seq: uint64(first)}
	for i := range rounds {
		a := g.dog(fmt.Sprintf("latency-%d", first+i), 1)
		start := time.Now()
		pos, err := appendStream(ctx, client, a)
		if err != nil {
			return s, fmt.Errorf("read-your-writes round %d: %w", i+1, err)
		}
		s.Appends = append(s.Appends, time.Since(start))
		s.Last = pos
		done, err := d.WaitAll(ctx, names, pos, start, 10*time.Second)
		if err != nil {
			return s, fmt.Errorf("read-your-writes round %d: %w", i+1, err)
		}
		var slowest time.Duration
		for name, t := range done {
			s.Waits[name] = append(s.Waits[name], t)
			slowest = max(slowest, t)
		}
		s.Every = append(s.Every, slowest)
	}
	return s, nil
}

// RoundSamples are the samples of ReadYourWrites.
type RoundSamples struct {
	Waits   map[string][]time.Duration // by projection
	Every   []time.Duration            // until every projection had the event
	Appends []time.Duration
	Last    uint64 // the commit position of the last append
}
