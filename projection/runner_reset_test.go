// Tests of the online Reset: rebuilding while events keep coming, restarting a stopped
// projection, failures that change nothing, and refusals.

package projection_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

// perEvent counts every event it handles under "<name>/total" and "<name>/e/<id>", so that a
// lost or doubled event shows in the view.
func perEvent(name string) *projection.Dispatch[*memory.Tx] {
	return projection.New[*memory.Tx](name).On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		tx.Add(name+"/total", 1)
		tx.Add(name+"/e/"+e.ID, 1)
		return nil
	})
}

// emptyView deletes every key of projection name, as a reset SQL would.
func emptyView(name string) func(context.Context, *memory.Tx) error {
	return func(_ context.Context, tx *memory.Tx) error {
		for _, k := range tx.Keys(name + "/") {
			tx.Delete(k)
		}
		return nil
	}
}

// checkExactlyOnce fails unless the view of name counts every event of evs exactly once.
func checkExactlyOnce(t *testing.T, store *memory.Store, name string, evs []projection.Event) {
	t.Helper()
	if got := store.Int(name + "/total"); got != int64(len(evs)) {
		t.Errorf("total = %d, want %d", got, len(evs))
	}
	if got := len(store.Keys(name + "/e/")); got != len(evs) {
		t.Errorf("%d distinct events in the view, want %d", got, len(evs))
	}
	for _, e := range evs {
		if n := store.Int(name + "/e/" + e.ID); n != 1 {
			t.Fatalf("event %s at %v counted %d times, want once", e.ID, e.Position, n)
		}
	}
}

func TestResetRebuildsTheViewWhileEventsKeepComing(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 3000)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(perEvent("c"), projection.ProjectionOptions{BatchSize: 20}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	mid := evs[1500].Position.Commit
	wait(t, r, "c", mid) // mid-stream: catching up, with batches in flight

	// Events keep coming while the projection resets.
	var mu sync.Mutex
	more := make([]projection.Event, 0, 500)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 500 {
			e := log.Append("s", topicA, nil)
			mu.Lock()
			more = append(more, e)
			mu.Unlock()
			time.Sleep(50 * time.Microsecond)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Reset(ctx, "c", emptyView("c")); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	// Right after the reset the watermark starts again: a wait for a position the old view had
	// reached blocks until the rebuilt view has it too.
	s, err := r.Wait(ctx, "c", mid)
	if err != nil {
		t.Fatalf("Wait after reset: %v", err)
	}
	if got := store.Int("c/total"); got < 1501 {
		t.Errorf("Wait(%d) returned at %v with %d events in the rebuilt view, want at least 1501", mid, s, got)
	}
	if _, err := store.Wait(ctx, "c", mid); err != nil {
		t.Fatalf("store Wait after reset: %v", err)
	}
	if got := store.Int("c/total"); got < 1501 {
		t.Errorf("store Wait(%d) returned with %d events in the rebuilt view, want at least 1501", mid, got)
	}
	wg.Wait()
	all := append(append([]projection.Event(nil), evs...), more...)
	last := all[len(all)-1].Position.Commit
	wait(t, r, "c", last)
	wait(t, store, "c", last)
	checkExactlyOnce(t, store, "c", all)
	st := status(r, "c")
	if st.Tracking.Last.Commit != last || st.Failed != nil || !st.Leader {
		t.Errorf("status after the rebuild = %+v, want at %d, leading, no failure", st, last)
	}
}

func TestResetRestartsAStoppedProjectionFromItsStart(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	before := appendEvents(log, 3)
	evs := appendEvents(log, 5)
	r := projection.NewRunner(log, store, fastOptions(nil))
	// Fails once on evs[2]: the projection stops there until the reset.
	p := failOn("bad", map[uint64]int{evs[2].Position.Commit: 1})
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 1, Start: projection.Start{Kind: projection.StartAfter, Position: before[2].Position}}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	eventually(t, "the projection to stop", func() bool { return status(r, "bad").State == projection.StateStopped })
	if got := store.Int("bad/total"); got != 2 {
		t.Fatalf("count before the reset = %d, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Reset(ctx, "bad", emptyView("bad")); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	wait(t, r, "bad", evs[4].Position.Commit)
	if got := store.Int("bad/total"); got != 5 {
		t.Errorf("count after the reset = %d, want 5 (the events after the configured start, once)", got)
	}
	st := status(r, "bad")
	if st.Failed != nil || st.State == projection.StateStopped {
		t.Errorf("status after the reset = %+v, want the failure cleared", st)
	}
}

func TestResetFailureChangesNothing(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 10)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(perEvent("c"), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", evs[9].Position.Commit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.Reset(ctx, "c", func(_ context.Context, tx *memory.Tx) error {
		tx.Delete("c/total")
		return errors.New("relation \"c\" does not exist")
	})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Reset with a failing reset = %v, want its error", err)
	}
	e := log.Append("s", topicA, nil)
	wait(t, r, "c", e.Position.Commit)
	checkExactlyOnce(t, store, "c", append(evs, e))
}

func TestResetRefusesUnknownProjectionsAndStandbys(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	appendEvents(log, 10)
	var runners []*projection.Runner[*memory.Tx]
	for i := range 2 {
		opts := fastOptions(nil)
		opts.Leader = leader
		r := projection.NewRunner(log, store, opts)
		if err := r.Add(perEvent("c"), projection.ProjectionOptions{}); err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		start(t, r)
		if i == 0 {
			eventually(t, "the first runner to lead", func() bool { return status(r, "c").Leader })
		}
	}
	eventually(t, "the second runner to be a standby", func() bool { return status(runners[1], "c").State == projection.StateStandby })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := runners[0].Reset(ctx, "nope", nil); !errors.Is(err, tracking.ErrUnknownProjection) {
		t.Errorf("Reset of an unknown projection = %v, want ErrUnknownProjection", err)
	}
	if err := runners[1].Reset(ctx, "c", nil); !errors.Is(err, projection.ErrNotLeader) {
		t.Errorf("Reset on a standby = %v, want ErrNotLeader", err)
	}
	if err := runners[0].Reset(ctx, "c", emptyView("c")); err != nil {
		t.Fatalf("Reset on the leader: %v", err)
	}
	wait(t, runners[0], "c", log.Events()[9].Position.Commit)
	checkExactlyOnce(t, store, "c", log.Events())
}

// rewindingStore is a memory store that rewinds itself (a projection.Rewinder), recording each
// call, as views/postgres does under its leadership lock.
type rewindingStore struct {
	*memory.Store
	mu    sync.Mutex
	calls []tracking.State // the state each Rewind rewound to
}

func (s *rewindingStore) Rewind(ctx context.Context, name string, to tracking.State, reset func(context.Context, *memory.Tx) error) (tracking.State, error) {
	from, _, err := s.Load(ctx, name)
	if err != nil {
		return from, err
	}
	if err := s.Apply(ctx, name, from, to, reset); err != nil {
		return from, err
	}
	s.mu.Lock()
	s.calls = append(s.calls, to)
	s.mu.Unlock()
	return from, nil
}

// With a store that rewinds itself, Reset hands it the view's reset and the projection's start
// instead of applying the rewind itself; the rebuilt view is whole.
func TestResetUsesTheStoresRewind(t *testing.T) {
	log := projectiontest.NewLog()
	store := &rewindingStore{Store: memory.New()}
	evs := appendEvents(log, 50)
	r := projection.NewRunner(log, store, fastOptions(nil))
	after := evs[9].Position
	if err := r.Add(perEvent("c"), projection.ProjectionOptions{Start: projection.Start{Kind: projection.StartAfter, Position: after}}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	last := evs[len(evs)-1].Position.Commit
	wait(t, r, "c", last)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Reset(ctx, "c", emptyView("c")); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	store.mu.Lock()
	calls := append([]tracking.State(nil), store.calls...)
	store.mu.Unlock()
	if want := (tracking.State{Last: after}); len(calls) != 1 || calls[0] != want {
		t.Fatalf("Rewind calls = %v, want one to the start %v", calls, want)
	}
	wait(t, r, "c", last)
	checkExactlyOnce(t, store.Store, "c", evs[10:])
}
