// Tests of leadership: a standby takes over when the lease is lost, a lost lease rolls back
// the batch in flight, failures to acquire are retried and reported once.

package projection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

func TestStandbyWaitsAndTakesOverWhenTheLeaseIsLost(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	for range 500 {
		log.Append("s", topicA, nil)
	}
	recs := []*recorder{{}, {}}
	var runners []*projection.Runner[*memory.Tx]
	for i := range 2 {
		opts := fastOptions(recs[i])
		opts.Leader = leader
		r := projection.NewRunner(log, store, opts)
		if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchSize: 50}); err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		start(t, r)
		if i == 0 {
			eventually(t, "the first runner to lead", func() bool { return status(r, "c").Leader })
		}
	}
	wait(t, store, "c", log.Events()[499].Position.Commit)
	eventually(t, "the second runner to be a standby", func() bool { return status(runners[1], "c").State == projection.StateStandby })
	if st := status(runners[1], "c"); st.Leader {
		t.Fatalf("standby status = %+v, want not leader", st)
	}
	for round := range 6 {
		var last projection.Event
		for range 200 {
			last = log.Append("s", topicA, nil)
		}
		eventually(t, "a runner to lead", func() bool { return leader.Held("c") })
		if !leader.Revoke("c", fmt.Errorf("lock connection killed (round %d)", round)) {
			t.Fatalf("round %d: no lease to revoke", round)
		}
		wait(t, store, "c", last.Position.Commit)
		if got, want := store.Int("c/total"), int64(500+200*(round+1)); got != want {
			t.Fatalf("round %d: count = %d, want %d", round, got, want)
		}
	}
	leaders := func() (n int) {
		for _, r := range runners {
			if status(r, "c").Leader {
				n++
			}
		}
		return n
	}
	lost := func() (n int) {
		for _, rec := range recs {
			n += count(rec.snapshot().errs, "leadership")
		}
		return n
	}
	eventually(t, "one leader and six lost leases reported", func() bool { return leaders() == 1 && lost() == 6 })
	if leader.Grants("c") < 7 {
		t.Errorf("%d grants of the lease, want at least 7", leader.Grants("c"))
	}
}

// A batch in flight when the lease is lost is rolled back, never committed; the events are then
// processed once by whoever leads next.
func TestLosingTheLeaseRollsBackTheBatchInFlight(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	evs := appendEvents(log, 20)
	var h handled
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := projection.New[*memory.Tx]("c").On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		h.inc(e.ID)
		if e.ID == evs[10].ID {
			once.Do(func() { close(entered); <-release })
		}
		tx.Add("c/total", 1)
		return nil
	})
	rec := &recorder{}
	opts := fastOptions(rec)
	opts.Leader = leader
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 10, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	<-entered // the second batch (events 10-19) is in its handlers
	leader.Revoke("c", errors.New("lock connection killed"))
	close(release)
	wait(t, r, "c", evs[19].Position.Commit)
	if got := store.Int("c/total"); got != 20 {
		t.Fatalf("count = %d, want 20", got)
	}
	if h.get(evs[10].ID) != 2 || h.get(evs[0].ID) != 1 {
		t.Errorf("event 10 handled %d times, event 0 %d times; want 2 (rolled back, then redone) and 1", h.get(evs[10].ID), h.get(evs[0].ID))
	}
	got := rec.snapshot()
	if sum := sumOf(got.batches); sum != 20 {
		t.Errorf("committed batches %v hold %d events, want 20", got.batches, sum)
	}
	if !contains(got.errs, "leadership") || !contains(states(got.states), "standby") {
		t.Errorf("errors %v, states %v: want the lost lease reported and a return to standby", got.errs, got.states)
	}
}

func TestLeadershipAcquireFailuresAreRetriedAndReportedOnce(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	leader.FailAcquire(errors.New("connection refused"), errors.New("connection refused"), errors.New("connection refused"))
	e := log.Append("s", topicA, nil)
	rec := &recorder{}
	opts := fastOptions(rec)
	opts.Leader = leader
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", e.Position.Commit)
	if got := rec.snapshot().errs; len(got) != 1 || got[0] != "leadership" {
		t.Errorf("errors = %v, want [leadership] once for three failed attempts", got)
	}
}
