// Tests of natural batching: full batches while catching up, no timer for a live event.

package projection_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// While catching up, batches fill to BatchSize; once live, an event is committed as soon as the
// subscription has nothing more ready, however long BatchInterval is.
func TestRunnerCommitsLiveEventsWithoutWaitingForTheInterval(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	history := appendEvents(log, 1000)
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchSize: 100, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", history[len(history)-1].Position.Commit)
	for range 3 {
		e := log.Append("s", topicA, nil)
		wait(t, r, "c", e.Position.Commit) // within the helper's 10s: an hour's interval would time out
	}
	want := append(slices.Repeat([]int{100}, 10), 1, 1, 1)
	if got := eventBatches(rec.snapshot().batches); !slices.Equal(got, want) {
		t.Errorf("batches of events = %v, want %v: ten full batches of history, then one per live event", got, want)
	}
	if got := store.Int("c/total"); got != 1003 {
		t.Errorf("total = %d, want 1003", got)
	}
}

// eventBatches is batches without the commits that only advanced a checkpoint.
func eventBatches(batches []int) []int {
	var out []int
	for _, n := range batches {
		if n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// A live burst that arrives while a batch commits fills the next batch meanwhile: it is
// committed in one batch once the first commits (two, should the pump be handing over the
// last event just as the batcher finds its buffer empty), not event by event.
func TestRunnerFillsTheNextLiveBatchWhileOneCommits(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	rec := &recorder{}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	p := projection.New[*memory.Tx]("c").On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		if e.Stream == "gate" {
			entered <- struct{}{}
			<-release
		}
		tx.Add("c/total", 1)
		return nil
	})
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	eventually(t, "the projection is live", func() bool { return status(r, "c").State == projection.StateLive })
	log.Append("gate", topicA, nil)
	<-entered // its batch is committing
	burst := appendEvents(log, 20)
	eventually(t, "the pump has read the burst", func() bool { return log.Delivered() == 21 })
	close(release)
	wait(t, r, "c", burst[len(burst)-1].Position.Commit)
	got := eventBatches(rec.snapshot().batches)
	if len(got) < 2 || got[0] != 1 || len(got) > 3 || sumOf(got) != 21 {
		t.Errorf("batches of events = %v, want the gate's batch of 1, then the burst of 20 in one (or two)", got)
	}
	if total := store.Int("c/total"); total != 21 {
		t.Errorf("total = %d, want 21", total)
	}
}
