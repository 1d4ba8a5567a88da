// Tests of natural batching: full batches while catching up, no timer for a live event.

package projection_test

import (
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
