// Tests of the probe of an idle live projection: a wait for an ignored event returns without
// further traffic, an idle projection stops probing, and no event is ever skipped.

package projection_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

// probeOptions checkpoints often, so that probes run within the tests' time.
func probeOptions(obs projection.Observer) projection.Options {
	o := fastOptions(obs)
	o.CheckpointEvery = 100 * time.Millisecond
	return o
}

// A live filtered subscription reports no checkpoint for a lone ignored event; the probe makes
// a wait for its position return anyway, with no further events written.
func TestWaitForALoneIgnoredEventReturnsWithoutFurtherTraffic(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	r := projection.NewRunner(log, store, probeOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	first := log.Append("s", topicA, nil)
	wait(t, r, "c", first.Position.Commit)

	probes := log.Probes()
	ignored := log.Append("d", decoy, nil)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := r.Wait(ctx, "c", ignored.Position.Commit)
	if err != nil {
		t.Fatalf("Wait for the ignored event at %d: %v after %v (state %v)", ignored.Position.Commit, err, time.Since(began), s)
	}
	if s.Last != first.Position || s.Checkpoint != ignored.Position.Commit+1 {
		t.Errorf("state = %v, want last %v and checkpoint %d", s, first.Position, ignored.Position.Commit+1)
	}
	stored, _, _ := store.Load(context.Background(), "c")
	if stored != s {
		t.Errorf("store tracking %v != watermark %v", stored, s)
	}
	n := log.Probes()
	if n == probes {
		t.Fatal("the wait returned, but no probe looked ahead past the ignored event")
	}

	// Idle and up to date: the probe keeps reading the head, but looks ahead no more. The look
	// ahead that committed the checkpoint ended before the commit, so n counts every one so far.
	heads := log.Heads()
	eventually(t, "three more probe rounds", func() bool { return log.Heads() >= heads+3 })
	if got := log.Probes(); got != n {
		t.Errorf("%d probes while idle and up to date, want none", got-n)
	}
}

// A handled event written right after an ignored one is delivered exactly once: written at once
// (racing with the probe's rounds), or once the probe has looked ahead past the ignored one.
func TestProbeNeverSkipsTheEventAfterAnIgnoredOne(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	r := projection.NewRunner(log, store, probeOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", 0)
	for i := range 5 {
		probes := log.Probes() // idle and up to date: no look-ahead runs until the decoy
		log.Append("d", decoy, nil)
		if i%2 == 1 {
			eventually(t, "a probe past the decoy", func() bool { return log.Probes() > probes })
		}
		e := log.Append("s", topicA, nil)
		wait(t, r, "c", e.Position.Commit)
		heads := log.Heads()
		eventually(t, "a probe round between rounds", func() bool { return log.Heads() > heads })
	}
	if got := store.Int("c/total"); got != 5 {
		t.Errorf("count = %d, want 5", got)
	}
}

// racingLog appends an event of topicA right after each head read, as a writer racing with the
// probe would: the probe must not count it as done.
type racingLog struct {
	*projectiontest.Log
	mu       sync.Mutex
	appended []projection.Event
	left     int
}

func (l *racingLog) Head(ctx context.Context) (tracking.Position, time.Time, error) {
	p, at, err := l.Log.Head(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.left > 0 && p.Commit > 0 {
		l.left--
		l.appended = append(l.appended, l.Append("race", topicA, nil))
	}
	return p, at, err
}

func TestProbeKeepsEventsWrittenAfterTheHeadRead(t *testing.T) {
	log := &racingLog{Log: projectiontest.NewLog()}
	store := memory.New()
	r := projection.NewRunner(log, store, probeOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", 0)
	ignored := log.Append("d", decoy, nil)
	log.mu.Lock()
	log.left = 1
	log.mu.Unlock()
	wait(t, r, "c", ignored.Position.Commit)
	log.mu.Lock()
	appended := append([]projection.Event(nil), log.appended...)
	log.mu.Unlock()
	if len(appended) != 1 {
		t.Fatalf("%d events raced with the probe, want 1", len(appended))
	}
	s := wait(t, r, "c", appended[0].Position.Commit)
	if s.Last != appended[0].Position {
		t.Errorf("state = %v, want last %v", s, appended[0].Position)
	}
	if got := store.Int("c/total"); got != 1 {
		t.Errorf("count = %d, want the racing event once", got)
	}
	if log.Probes() == 0 {
		t.Error("no probe ran")
	}
}

// timedLog records when Head is called.
type timedLog struct {
	*projectiontest.Log
	mu    sync.Mutex
	heads []time.Time
}

func (l *timedLog) Head(ctx context.Context) (tracking.Position, time.Time, error) {
	l.mu.Lock()
	l.heads = append(l.heads, time.Now())
	l.mu.Unlock()
	return l.Log.Head(ctx)
}

func (l *timedLog) headTimes() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.heads...)
}

// An idle, up-to-date projection reads the head once per CheckpointEvery, not in a busy loop.
// A timer never fires early, so the spacing holds however loaded the machine is.
func TestAnIdleProjectionProbesOncePerCheckpointEvery(t *testing.T) {
	log := &timedLog{Log: projectiontest.NewLog()}
	opts := probeOptions(nil)
	r := projection.NewRunner(log, memory.New(), opts)
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	e := log.Append("s", topicA, nil)
	wait(t, r, "c", e.Position.Commit)
	eventually(t, "four probe rounds", func() bool { return len(log.headTimes()) >= 4 })
	heads := log.headTimes()
	for i := 1; i < len(heads); i++ {
		if gap := heads[i].Sub(heads[i-1]); gap < opts.CheckpointEvery {
			t.Errorf("head reads %d and %d %v apart, want at least CheckpointEvery (%v)", i, i+1, gap, opts.CheckpointEvery)
		}
	}
}
