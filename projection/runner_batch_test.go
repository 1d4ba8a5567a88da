// Tests of batch projections: one HandleBatch call per batch, and a failing batch bisected to
// its poison event under the stop, retry and skip policies, each event committed once.

package projection_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// batchCounter is a batch projection that counts each event it commits under "<name>/<id>",
// and fails every batch holding an event whose position is in bad (a count > 0 fails that
// many times, -1 always).
type batchCounter struct {
	mu    sync.Mutex
	bad   map[uint64]int
	calls int // HandleBatch calls
	sizes []int
}

func (c *batchCounter) projection(name string) *projection.Batch[*memory.Tx] {
	return projection.NewBatch(name, []string{topicA}, func(_ context.Context, tx *memory.Tx, events []projection.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.calls++
		c.sizes = append(c.sizes, len(events))
		for _, e := range events {
			if n := c.bad[e.Position.Commit]; n != 0 {
				if n > 0 {
					c.bad[e.Position.Commit] = n - 1
				}
				return fmt.Errorf("bad event %d", e.Position.Commit)
			}
		}
		for _, e := range events {
			tx.Add(name+"/"+e.ID, 1)
			tx.Add(name+"/total", 1)
		}
		return nil
	})
}

func (c *batchCounter) snapshot() (calls int, sizes []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, append([]int(nil), c.sizes...)
}

// checkOnce fails t unless every event of evs but those in skipped is counted exactly once.
func checkOnce(t *testing.T, store *memory.Store, name string, evs []projection.Event, skipped ...projection.Event) {
	t.Helper()
	skip := map[string]bool{}
	for _, e := range skipped {
		skip[e.ID] = true
	}
	for i, e := range evs {
		want := int64(1)
		if skip[e.ID] {
			want = 0
		}
		if got := store.Int(name + "/" + e.ID); got != want {
			t.Errorf("event %d committed %d times, want %d", i, got, want)
		}
	}
}

func TestABatchProjectionGetsOneCallPerBatch(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 250)
	c := &batchCounter{}
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(c.projection("b"), projection.ProjectionOptions{BatchSize: 100, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "b", evs[249].Position.Commit)
	checkOnce(t, store, "b", evs)
	if calls, sizes := c.snapshot(); calls != 3 || sizes[0] != 100 || sizes[1] != 100 || sizes[2] != 50 {
		t.Errorf("HandleBatch calls = %d of sizes %v, want 100, 100, 50", calls, sizes)
	}
}

// runBatch runs a batchCounter over 100 events, in one batch, failing on the events at bad.
func runBatch(t *testing.T, bad []int, fails int, pol projection.ErrorPolicy) (*projection.Runner[*memory.Tx], *memory.Store, *batchCounter, []projection.Event, *recorder) {
	t.Helper()
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 100)
	c := &batchCounter{bad: map[uint64]int{}}
	for _, i := range bad {
		c.bad[evs[i].Position.Commit] = fails
	}
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(c.projection("b"), projection.ProjectionOptions{BatchSize: 100, BatchInterval: time.Hour, OnError: pol}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	return r, store, c, evs, rec
}

func TestAFailingBatchIsBisectedToItsEventUnderStop(t *testing.T) {
	r, store, c, evs, rec := runBatch(t, []int{37}, -1, projection.ErrorPolicy{})
	eventually(t, "the projection stops", func() bool { return r.Status()[0].State == projection.StateStopped })
	st := r.Status()[0]
	if st.Failed == nil || st.Failed.EventID != evs[37].ID || !strings.Contains(st.Failed.Error, fmt.Sprintf("bad event %d", evs[37].Position.Commit)) {
		t.Fatalf("status = %+v, want stopped on event 37", st)
	}
	if st.Tracking.Last != evs[36].Position {
		t.Errorf("tracking at %v, want the event before the culprit, %v", st.Tracking.Last, evs[36].Position)
	}
	checkOnce(t, store, "b", evs[:37])
	if got := store.Int("b/total"); got != 37 {
		t.Errorf("committed %d events, want 37", got)
	}
	// One batch, then a bisection: about log2(100) attempts, not one per event.
	if calls, _ := c.snapshot(); calls > 16 {
		t.Errorf("HandleBatch called %d times to find the culprit of 100 events, want at most 16", calls)
	}
	if got := rec.snapshot().failed; len(got) != 1 || got[0] != "stop" {
		t.Errorf("failures reported = %v, want one stop", got)
	}
}

func TestAFailingBatchIsBisectedToItsEventUnderRetry(t *testing.T) {
	pol := projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	// The event fails the first batch, the bisection's attempts that hold it, then once alone.
	r, store, _, evs, rec := runBatch(t, []int{60}, 5, pol)
	wait(t, r, "b", evs[99].Position.Commit)
	checkOnce(t, store, "b", evs)
	if got := rec.snapshot().failed; len(got) == 0 || len(got) > 3 || count(got, "retry") != len(got) {
		t.Errorf("failures reported = %v, want one to three retries", got)
	}
}

func TestAFailingBatchIsBisectedToItsEventsUnderSkip(t *testing.T) {
	pol := projection.ErrorPolicy{Policy: projection.PolicySkip}
	r, store, _, evs, rec := runBatch(t, []int{0, 41, 42, 99}, -1, pol)
	wait(t, r, "b", evs[99].Position.Commit)
	checkOnce(t, store, "b", evs, evs[0], evs[41], evs[42], evs[99])
	if got := store.Int("b/total"); got != 96 {
		t.Errorf("committed %d events, want 96", got)
	}
	dl := store.DeadLetters()
	if len(dl) != 4 || dl[0].Event.ID != evs[0].ID || dl[1].Event.ID != evs[41].ID || dl[2].Event.ID != evs[42].ID || dl[3].Event.ID != evs[99].ID {
		t.Errorf("dead letters = %+v, want events 0, 41, 42 and 99", dl)
	}
	if got := rec.snapshot().dead; got != 4 {
		t.Errorf("dead letters reported = %d, want 4", got)
	}
}

func TestAPanickingBatchHandlerIsAHandlerError(t *testing.T) {
	log := projectiontest.NewLog()
	log.Append("s", topicA, nil)
	p := projection.NewBatch("b", []string{topicA}, func(context.Context, *memory.Tx, []projection.Event) error { panic("nil map") })
	r := projection.NewRunner(log, memory.New(), fastOptions(nil))
	if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	eventually(t, "the projection stops", func() bool { return r.Status()[0].State == projection.StateStopped })
	if st := r.Status()[0]; st.Failed == nil || !strings.Contains(st.Failed.Error, "batch handler panicked: nil map") {
		t.Errorf("status = %+v, want stopped on the panic", st)
	}
}
