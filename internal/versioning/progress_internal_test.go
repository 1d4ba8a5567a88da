package versioning

import (
	"testing"
	"time"
)

// Progress derives the speed from the positions and events since its first update, and the
// time left from the distance to the serving position at that speed.
func TestProgressRatesAndETA(t *testing.T) {
	p := &Progress{Version: "v"}
	t0 := time.Unix(1000, 0)
	p.update(100, 10_100, 10_200, t0)
	if s := p.Snapshot(); s.PositionsPerSecond != 0 || s.ETA != 0 || s.Position != 100 {
		t.Fatalf("first update: %+v", s)
	}
	p.applied(50)
	p.update(1100, 10_100, 10_200, t0.Add(2*time.Second))
	s := p.Snapshot()
	if s.PositionsPerSecond != 500 || s.EventsPerSecond != 25 || s.ETA != 18*time.Second || s.Head != 10_200 || s.Version != "v" {
		t.Fatalf("second update: %+v", s)
	}
	if !p.due(5*time.Second, t0) || p.due(5*time.Second, t0.Add(time.Second)) || !p.due(5*time.Second, t0.Add(6*time.Second)) {
		t.Fatal("due does not space the progress lines")
	}
}

// A swap that waited in vain puts the next off by Every, doubled for each miss in a row, up to
// maxSwapBackoff.
func TestMissedSwapsBackOff(t *testing.T) {
	p := &Progress{Version: "v"}
	t0 := time.Unix(1000, 0)
	if !p.swapNotBefore().IsZero() {
		t.Fatal("a build that never missed a swap is put off")
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		p.missedSwap(time.Second, t0)
		if got := p.swapNotBefore().Sub(t0); got != want {
			t.Fatalf("after %d misses the next swap waits %s, want %s", i+1, got, want)
		}
	}
}
