package kurrent_test

import (
	"context"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
)

func TestProbeFindsOnlyEventsOfTheTopicsNotYetDoneUpToThePosition(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := f.append(t, "dog", registered, `{}`)
	ignored := f.append(t, "d", decoy, `{}`)
	topics := []string{registered}
	done := tracking.State{Last: first}
	for _, c := range []struct {
		name    string
		from    tracking.State
		through uint64
		want    bool
	}{
		{"the first event, not done", tracking.State{}, ignored.Commit, true},
		{"only an ignored event after the last", done, ignored.Commit, false},
		{"through a position before the first event", tracking.State{}, first.Commit - 1, false},
	} {
		got, err := f.src.Probe(ctx, topics, c.from, c.through)
		if err != nil {
			t.Fatalf("%s: Probe: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: Probe(%v, through %d) = %v, want %v", c.name, c.from, c.through, got, c.want)
		}
	}
	// An event of the topics written after the probed position is not reported, one before it is.
	next := f.append(t, "dog", registered, `{}`)
	if got, err := f.src.Probe(ctx, topics, done, ignored.Commit); err != nil || got {
		t.Errorf("Probe through %d with a later event at %v = %v, %v; want false", ignored.Commit, next, got, err)
	}
	if got, err := f.src.Probe(ctx, topics, done, next.Commit); err != nil || !got {
		t.Errorf("Probe through %v = %v, %v; want true", next, got, err)
	}
	// A resume from an exclusive checkpoint (#4970) still sees the event written at it.
	cp := tracking.State{Last: first, Checkpoint: next.Commit}
	if got, err := f.src.Probe(ctx, topics, cp, next.Commit); err != nil || !got {
		t.Errorf("Probe from %v through %v = %v, %v; want true", cp, next, got, err)
	}
}

// A wait for the position of a lone event the projection ignores returns, with no further
// traffic in $all, over the real protocol.
func TestWaitForALoneIgnoredEventOverKurrent(t *testing.T) {
	for _, read := range reads {
		t.Run(read.name, func(t *testing.T) { testWaitForALoneIgnoredEvent(t, read.wrap) })
	}
}

func testWaitForALoneIgnoredEvent(t *testing.T, wrap func(projection.Source) projection.Source) {
	f := newFixture(t, kurrent.Options{})
	r, store, stop := runCounter(t, wrap(f.src), nil, 50*time.Millisecond)
	defer stop()
	first := f.append(t, "dog", registered, `{}`)
	waitProcessed(t, r, first, 10*time.Second)
	ignored := f.append(t, "d", decoy, `{}`)
	waitProcessed(t, r, ignored, 2*time.Second)
	after := f.append(t, "dog", registered, `{}`)
	waitProcessed(t, r, after, 10*time.Second)
	if got := store.Int("n"); got != 2 {
		t.Errorf("count = %d, want 2", got)
	}
}
