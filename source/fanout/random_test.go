package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
)

// Subscribers of random topics join at random positions and times while the log grows, read at
// random paces (a small ring and a short StallAfter make them attach, fall behind, get detached
// and hand over again), and now and then close and resubscribe from what they got, as a runner
// does after a fault. Each one's events, over all its subscriptions, are exactly those of its
// topics after its starting state, in log order, and every checkpoint holds for it.
func TestRandomSubscribersGetExactlyTheirEvents(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { randomRun(t, seed) })
	}
}

func randomRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	l := projectiontest.NewLog()
	l.CheckpointEvery = 5
	initial := appendMixed(l, 300)
	opts := Options{Window: 8, StallAfter: time.Millisecond, MaxLead: 1 + seed%2*4000}
	if seed%3 == 0 {
		opts.Topics = allTypes
	}
	src := New(l, opts)
	topicSets := [][]string{{typeA}, {typeB}, {typeC}, {typeA, typeB}, {typeB, typeC}, allTypes}

	type plan struct {
		topics []string
		from   tracking.State
		seed   uint64
	}
	plans := make([]plan, 6)
	for i := range plans {
		p := plan{topics: topicSets[rng.IntN(len(topicSets))], seed: rng.Uint64()}
		switch e := initial[rng.IntN(len(initial))]; rng.IntN(4) {
		case 1:
			p.from = tracking.State{Last: e.Position}
		case 2:
			p.from = tracking.State{Checkpoint: e.Position.Commit}
		case 3:
			p.from = tracking.State{Last: e.Position, Checkpoint: e.Position.Commit + 500}
		}
		plans[i] = p
	}

	appended := make(chan struct{})
	var final []projection.Event
	go func() {
		defer close(appended)
		for range 30 {
			appendMixed(l, 10)
			runtime.Gosched()
		}
		final = l.Events()
	}()

	var wg sync.WaitGroup
	results := make([][]segment, len(plans))
	errs := make(chan error, len(plans))
	for i, p := range plans {
		wg.Go(func() {
			segs, err := readRandomly(src, p.topics, p.from, p.seed, appended, func() []projection.Event { return final })
			results[i] = segs
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range plans {
		checkSegments(t, final, p.topics, p.from, results[i])
	}
}

// segment is what one subscription delivered.
type segment struct {
	from tracking.State
	msgs []projection.Message
}

// readRandomly reads src as a runner would, at a random pace, closing and resubscribing from
// what it got now and then, until it has the last event of topics of the final log.
func readRandomly(src projection.Source, topics []string, from tracking.State, seed uint64, appended <-chan struct{}, final func() []projection.Event) ([]segment, error) {
	rng := rand.New(rand.NewPCG(seed, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	state := from
	var segs []segment
	var last tracking.Position
	done := func() bool {
		select {
		case <-appended:
		default:
			return false
		}
		var want tracking.Position
		for _, e := range final() {
			if slices.Contains(topics, e.Type) && !from.Done(e.Position.Commit) {
				want = e.Position
			}
		}
		return want.IsZero() || last.Compare(want) >= 0
	}
	for !done() {
		sub, err := src.Subscribe(ctx, topics, state)
		if err != nil {
			return segs, err
		}
		seg := segment{from: state}
		for n := 20 + rng.IntN(200); n > 0 && !done(); n-- {
			if rng.IntN(4) == 0 {
				for range rng.IntN(50) {
					runtime.Gosched()
				}
			}
			m, err := sub.Next(ctx)
			if err != nil {
				_ = sub.Close()
				return segs, fmt.Errorf("topics %v from %v: %w", topics, state, err)
			}
			seg.msgs = append(seg.msgs, m)
			switch m.Kind {
			case projection.EventMessage:
				last, state.Last = m.Event.Position, m.Event.Position
			case projection.CheckpointMessage:
				state.Checkpoint = max(state.Checkpoint, m.Checkpoint)
			}
		}
		_ = sub.Close()
		segs = append(segs, seg)
	}
	return segs, nil
}

// checkSegments checks that the segments of one subscriber hold, in order and once each, the
// events of log of its topics not done by from, and that each checkpoint of a segment came after
// every such event before it (from that segment's start state).
func checkSegments(t *testing.T, log []projection.Event, topics []string, from tracking.State, segs []segment) {
	t.Helper()
	var want, got []projection.Event
	for _, e := range log {
		if slices.Contains(topics, e.Type) && !from.Done(e.Position.Commit) {
			want = append(want, e)
		}
	}
	for _, s := range segs {
		var delivered []projection.Event
		for _, m := range s.msgs {
			switch m.Kind {
			case projection.EventMessage:
				delivered = append(delivered, m.Event)
			case projection.CheckpointMessage:
				for _, e := range want {
					if !s.from.Done(e.Position.Commit) && e.Position.Commit < m.Checkpoint && !slices.ContainsFunc(delivered, func(d projection.Event) bool { return d.ID == e.ID }) {
						t.Fatalf("topics %v from %v: checkpoint %d before the event at %v was delivered", topics, s.from, m.Checkpoint, e.Position)
					}
				}
			}
		}
		got = append(got, delivered...)
	}
	if len(got) != len(want) {
		t.Fatalf("topics %v from %v: %d events in %d subscriptions, want %d", topics, from, len(got), len(segs), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID {
			t.Fatalf("topics %v from %v: event %d is at %v, want %v", topics, from, i, got[i].Position, want[i].Position)
		}
	}
}
