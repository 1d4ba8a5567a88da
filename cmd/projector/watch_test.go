package main

import (
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

func u64(v uint64) *uint64 { return &v }

// sampleOf is one sample of a projection at position with head, in state.
func sampleOf(state projection.RunState, position, head uint64) httpapi.ListJSON {
	return httpapi.ListJSON{Head: u64(head), Projections: []httpapi.ProjectionJSON{{
		Name: "dogs", State: state, Position: position, Head: u64(head), Lag: u64(head - position)}}}
}

// Events per second come from the counters of consecutive samples; the ETA from the positions
// rate over the last samples; the progress is position / head.
func TestWatchRates(t *testing.T) {
	r := newRates()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	rows := r.update(t0, sampleOf(projection.StateCatchingUp, 1000, 11000), map[string]float64{"dogs": 10})
	if rows[0].HaveRate || rows[0].HaveETA || !rows[0].CatchingUp || rows[0].Progress != 1000.0/11000 {
		t.Fatalf("first sample: %+v", rows[0])
	}
	rows = r.update(t0.Add(2*time.Second), sampleOf(projection.StateCatchingUp, 3000, 11000), map[string]float64{"dogs": 410})
	if !rows[0].HaveRate || rows[0].EventsPerSecond != 200 {
		t.Errorf("events/s = %v (%v), want 200", rows[0].EventsPerSecond, rows[0].HaveRate)
	}
	// 2000 positions in 2s: 1000/s, and 8000 to go.
	if !rows[0].HaveETA || rows[0].ETA != 8*time.Second {
		t.Errorf("ETA = %v (%v), want 8s", rows[0].ETA, rows[0].HaveETA)
	}
	rows = r.update(t0.Add(3*time.Second), sampleOf(projection.StateLive, 11000, 11000), map[string]float64{"dogs": 800})
	if rows[0].CatchingUp || rows[0].HaveETA || rows[0].EventsPerSecond != 390 {
		t.Errorf("caught up: %+v", rows[0])
	}
	// Without a daemon there is no counter: no events/s.
	rows = r.update(t0.Add(4*time.Second), sampleOf("unknown", 11000, 12000), nil)
	if rows[0].HaveRate || rows[0].eps() != "-" || !rows[0].CatchingUp {
		t.Errorf("no daemon: %+v", rows[0])
	}
}

func TestProgressBar(t *testing.T) {
	for _, c := range []struct {
		f     float64
		width int
		want  string
	}{{0, 4, "[----]"}, {0.5, 4, "[##--]"}, {1, 4, "[####]"}, {1.7, 2, "[##]"}, {0.26, 10, "[###-------]"}} {
		if got := progressBar(c.f, c.width); got != c.want {
			t.Errorf("progressBar(%v, %d) = %q, want %q", c.f, c.width, got, c.want)
		}
	}
}

// Output that is not a terminal gets a line per projection and sample, with no escape code.
func TestWatchLines(t *testing.T) {
	var b strings.Builder
	s := newScreen(&b, "projector status --watch")
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	r := newRates()
	r.update(now, sampleOf(projection.StateCatchingUp, 1000, 5000), map[string]float64{"dogs": 0})
	if err := s.draw(now.Add(time.Second), r.update(now.Add(time.Second), sampleOf(projection.StateCatchingUp, 2000, 5000), map[string]float64{"dogs": 50}), true); err != nil {
		t.Fatal(err)
	}
	s.close()
	want := "2026-12-03T09:00:01Z dogs state=catching_up position=2000 head=5000 lag=3000 events/s=50 eta=3s progress=40.0%\n"
	if b.String() != want {
		t.Errorf("output\n%q, want\n%q", b.String(), want)
	}
}

// A projection's version building gets its own row after the projection's: named NAME@VERSION,
// its head the serving position, its progress the share of it reached, and the daemon's
// events/s and ETA (unknown from PostgreSQL alone, which has no speed).
func TestWatchBuildRow(t *testing.T) {
	eta := 2.4
	out := sampleOf(projection.StateLive, 5000, 5000)
	out.Projections[0].Rebuild = &httpapi.RebuildJSON{Version: "abc~1", Position: 1000, ServingPosition: 4000, EventsPerSecond: 250, PositionsPerSecond: 900, ETASeconds: &eta}
	rows := newRates().update(time.Now(), out, nil)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want the projection's and its build's", len(rows))
	}
	b := rows[1]
	if b.Name != "dogs@abc~1" || b.State != stateBuilding || *b.Head != 4000 || *b.Lag != 3000 || !b.CatchingUp || b.Progress != 0.25 ||
		b.eps() != "250" || b.eta() != "2s" {
		t.Errorf("build row: %+v (events/s %s, ETA %s)", b, b.eps(), b.eta())
	}
	out.Projections[0].Rebuild = &httpapi.RebuildJSON{Version: "abc~1", Position: 4100, ServingPosition: 4000}
	b = newRates().update(time.Now(), out, nil)[1]
	if *b.Lag != 0 || b.Progress != 1 || b.eps() != "-" || b.eta() != "-" {
		t.Errorf("build row from PostgreSQL, past the serving position: %+v", b)
	}
}
