// Tests of the runner's normal flow: history then live, batching, filtered regions,
// checkpoints, resuming, where a projection starts, Wait, Add and Status.

package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

func TestRunnerProjectsHistoryThenLive(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	for i := range 50 {
		log.Append(fmt.Sprint("dog-", i%5), topicA, nil)
		log.Append(fmt.Sprint("dog-", i%5), topicB, nil)
	}
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(counter("counts", topicA, topicB), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	last := log.Events()[99].Position.Commit
	s := wait(t, r, "counts", last)
	if s.Last.Commit != last {
		t.Errorf("tracked last = %d, want %d", s.Last.Commit, last)
	}
	if got := store.Int("counts/total"); got != 100 {
		t.Fatalf("total = %d, want 100", got)
	}
	e := log.Append("dog-9", topicB, nil)
	wait(t, r, "counts", e.Position.Commit)
	wait(t, store, "counts", e.Position.Commit)
	if got, want := store.Int("counts/"+topicB), int64(51); got != want {
		t.Errorf("tricks = %d, want %d", got, want)
	}
	st := r.Status()
	if len(st) != 1 || st[0].State != projection.StateLive || !st[0].CaughtUp || st[0].Position != e.Position.Commit || !st[0].Leader {
		t.Errorf("status = %+v, want live, caught up, at %d", st, e.Position.Commit)
	}
}

func TestRunnerBatchesTenThousandEventsIntoFewTransactions(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	for i := range 10000 {
		log.Append(fmt.Sprint("s-", i%100), topicA, nil)
	}
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchSize: 1000, BatchInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", log.Events()[9999].Position.Commit)
	got := rec.snapshot().batches
	sum, withEvents := 0, 0
	for _, n := range got {
		sum += n
		if n > 0 {
			withEvents++
		}
		if n > 1000 {
			t.Errorf("a batch of %d events exceeds BatchSize 1000", n)
		}
	}
	if sum != 10000 || store.Int("c/total") != 10000 {
		t.Errorf("committed %d events, view counts %d; want 10000", sum, store.Int("c/total"))
	}
	if withEvents > 11 {
		t.Errorf("10,000 events took %d transactions, want at most 11: %v", withEvents, got)
	}
}

func TestRunnerFlushesOnCaughtUpWithoutWaitingForTheInterval(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	e := log.Append("s", topicA, nil)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", e.Position.Commit)
}

func TestRunnerIgnoresDecoysAndAdvancesThroughFilteredRegions(t *testing.T) {
	log := projectiontest.NewLog()
	log.CheckpointEvery = 4
	store := memory.New()
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", 0)
	var last projection.Event
	for i := range 40 {
		last = log.Append(fmt.Sprint("d-", i), decoy, nil)
	}
	// A wait for an event the projection does not subscribe to returns once a checkpoint passes it.
	s := wait(t, r, "c", last.Position.Commit)
	if !s.Last.IsZero() || s.Checkpoint <= last.Position.Commit {
		t.Errorf("state after filtered region = %v, want no event and a checkpoint past %d", s, last.Position.Commit)
	}
	if got := store.Int("c/total"); got != 0 {
		t.Errorf("decoys delivered: count %d", got)
	}
	stored, _, _ := store.Load(context.Background(), "c")
	if stored != s {
		t.Errorf("store tracking %v != watermark %v", stored, s)
	}
}

// The checkpoint a filtered subscription reports may be the position at which the next event
// will be written (KurrentDB #4970). A resume must still deliver that event.
func TestRunnerResumeDeliversTheEventWrittenAtTheCheckpoint(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	log.Append("x", decoy, nil)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	at := log.Next()
	s := wait(t, r, "c", at-1)
	stop()
	if s.Checkpoint != at {
		t.Fatalf("checkpoint = %d, want the next write position %d", s.Checkpoint, at)
	}
	e := log.Append("s", topicA, nil)
	if e.Position.Commit != at {
		t.Fatalf("event written at %d, want %d", e.Position.Commit, at)
	}
	r2 := projection.NewRunner(log, store, fastOptions(nil))
	if err := r2.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r2)
	wait(t, r2, "c", at)
	if got := store.Int("c/total"); got != 1 {
		t.Fatalf("count = %d after resume, want 1: the event at the checkpoint was lost", got)
	}
}

func TestRunnerResumesAfterRestartWithoutDoubleApplying(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	for range 30 {
		log.Append("s", topicA, nil)
	}
	for round := 1; round <= 3; round++ {
		r := projection.NewRunner(log, store, fastOptions(nil))
		if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchSize: 7}); err != nil {
			t.Fatal(err)
		}
		stop := start(t, r)
		wait(t, r, "c", log.Events()[len(log.Events())-1].Position.Commit)
		stop()
		if got, want := store.Int("c/total"), int64(30*round); got != want {
			t.Fatalf("round %d: count = %d, want %d", round, got, want)
		}
		for range 30 {
			log.Append("s", topicA, nil)
		}
	}
}

func TestRunnerStartAtEndSkipsHistory(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	old := log.Append("s", topicA, nil)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{Start: projection.Start{Kind: projection.StartEnd}}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", old.Position.Commit)
	e := log.Append("s", topicA, nil)
	wait(t, r, "c", e.Position.Commit)
	if got := store.Int("c/total"); got != 1 {
		t.Errorf("count = %d, want 1 (only the event after the start)", got)
	}
}

func TestRunnerWaitTimesOutAndRejectsUnknownProjections(t *testing.T) {
	log := projectiontest.NewLog()
	r := projection.NewRunner(log, memory.New(), fastOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Wait(ctx, "c", 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait for a future position: %v, want deadline exceeded", err)
	}
	if _, err := r.Wait(context.Background(), "nope", 1); !errors.Is(err, tracking.ErrUnknownProjection) {
		t.Errorf("Wait for an unknown projection: %v, want ErrUnknownProjection", err)
	}
}

func TestRunnerAddRejectsBadInput(t *testing.T) {
	r := projection.NewRunner(projectiontest.NewLog(), memory.New(), projection.Options{})
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		p    projection.Projection[*memory.Tx]
		o    projection.ProjectionOptions
		want string
	}{
		{counter("", topicA), projection.ProjectionOptions{}, "empty projection name"},
		{counter("none"), projection.ProjectionOptions{}, `"none": no topics`},
		{counter("c", topicA), projection.ProjectionOptions{}, `"c" added twice`},
		{counter("n", topicA), projection.ProjectionOptions{BatchSize: -1}, "BatchSize -1"},
		{counter("n", topicA), projection.ProjectionOptions{OnError: projection.ErrorPolicy{Policy: "ignore"}}, `OnError.Policy "ignore"`},
		{counter("n", topicA), projection.ProjectionOptions{Start: projection.Start{Kind: projection.StartAfter, Position: tracking.Position{Commit: 1 << 63}}}, "2^63-1"},
	}
	for _, c := range cases {
		if got := r.Add(c.p, c.o); got == nil || !strings.Contains(got.Error(), c.want) {
			t.Errorf("Add(%q, %+v) = %v, want an error containing %q", c.p.Name(), c.o, got, c.want)
		}
	}
	if err := projection.NewRunner(projectiontest.NewLog(), memory.New(), projection.Options{}).Run(context.Background()); err == nil {
		t.Error("Run with no projections succeeded")
	}
}

func TestStatusReportsThePendingBatch(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	p := projection.New[*memory.Tx]("c").On(topicA, func(context.Context, *memory.Tx, projection.Event) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", 0)
	e := log.Append("s", topicA, nil)
	<-entered
	st := r.Status()[0]
	if st.CaughtUp || !st.OldestPending.Equal(e.Created) || st.State != projection.StateLive {
		t.Errorf("status during a batch = %+v, want live, not caught up, oldest pending %v", st, e.Created)
	}
	close(release)
	wait(t, r, "c", e.Position.Commit)
	st = r.Status()[0]
	if !st.CaughtUp || !st.OldestPending.IsZero() || st.Position != e.Position.Commit || st.LastProgress.IsZero() {
		t.Errorf("status after the batch = %+v", st)
	}
}

func TestCheckpointOnlyCommitsAreThrottled(t *testing.T) {
	log := projectiontest.NewLog()
	log.CheckpointEvery = 1 // a checkpoint after every event
	store := memory.New()
	rec := &recorder{}
	opts := fastOptions(rec)
	opts.CheckpointEvery = 200 * time.Millisecond
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", 0)
	before := len(rec.snapshot().batches)
	began := time.Now()
	var last projection.Event
	for range 300 {
		last = log.Append("d", decoy, nil)
	}
	wait(t, r, "c", last.Position.Commit)
	commits := len(rec.snapshot().batches) - before
	if limit := int(time.Since(began)/opts.CheckpointEvery) + 2; commits > limit {
		t.Errorf("300 checkpoints caused %d commits in %v, want at most %d", commits, time.Since(began), limit)
	}
}

// A projection's own, shorter CheckpointEvery replaces the runner's for it alone.
func TestAProjectionsOwnCheckpointEvery(t *testing.T) {
	log := projectiontest.NewLog()
	log.CheckpointEvery = 1 // a checkpoint after every event
	store := memory.New()
	opts := fastOptions(nil)
	opts.CheckpointEvery = time.Hour
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(counter("own", topicA), projection.ProjectionOptions{CheckpointEvery: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(counter("runners", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "own", 0)
	wait(t, r, "runners", 0)
	var last projection.Event
	for range 50 {
		last = log.Append("d", decoy, nil)
	}
	wait(t, r, "own", last.Position.Commit) // past the decoys by its own checkpoints, within 10s
	if st := status(r, "runners"); st.Position >= last.Position.Commit {
		t.Errorf("the projection without its own CheckpointEvery is at %d, past the decoys (%d), within the runner's hour", st.Position, last.Position.Commit)
	}
	if err := r.Add(counter("bad", topicA), projection.ProjectionOptions{CheckpointEvery: -time.Second}); err == nil || !strings.Contains(err.Error(), "CheckpointEvery") {
		t.Errorf("a negative CheckpointEvery: %v, want an error naming it", err)
	}
}
