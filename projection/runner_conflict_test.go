// Tests of tracking conflicts: two runners on one projection never apply an event twice; a
// conflict stops the loser, or is retried under leadership.

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

func TestTwoRunnersOnOneProjectionNeverDoubleApply(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	for range 2000 {
		log.Append("s", topicA, nil)
	}
	// Neither runner goes past loading its tracking before the other has loaded it too: both
	// start from nothing and handle the same events, so one must meet the other's commits.
	// (Unhindered, one runner could catch up on every event before the other had even read its
	// tracking, and never conflict.)
	var loaded sync.WaitGroup
	loaded.Add(2)
	var runners []*projection.Runner[*memory.Tx]
	for range 2 {
		r := projection.NewRunner(log, &barrierStore{Store: store, loaded: &loaded}, fastOptions(nil))
		if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchSize: 10}); err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		start(t, r)
	}
	for range 100 {
		log.Append("s", topicA, nil)
	}
	last := log.Events()[2099].Position.Commit
	wait(t, store, "c", last)
	if got := store.Int("c/total"); got != 2100 {
		t.Fatalf("count = %d, want 2100", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, b := runners[0].Status()[0].State, runners[1].Status()[0].State
		if (a == projection.StateStopped) != (b == projection.StateStopped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("states %s and %s: want exactly one runner stopped by a tracking conflict", a, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunnerConflictStopsTheLoserOnly(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	e := log.Append("s", topicA, nil)
	rec := &recorder{}
	r := projection.NewRunner(log, rivalStore{store}, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(counter("other", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "other", e.Position.Commit)
	deadline := time.Now().Add(5 * time.Second)
	for r.Status()[0].State != projection.StateStopped && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.Status(); st[0].State != projection.StateStopped || st[1].State != projection.StateLive {
		t.Fatalf("states = %s, %s; want stopped, live", st[0].State, st[1].State)
	}
	if got := rec.snapshot().errs; len(got) != 1 || got[0] != "conflict" {
		t.Errorf("errors = %v, want [conflict]", got)
	}
	if got := store.Int("c/total"); got != 0 {
		t.Errorf("the losing batch was applied: count %d", got)
	}
}

// barrierStore holds its runner's first Load until loaded is done: every runner sharing loaded
// has read its tracking.
type barrierStore struct {
	*memory.Store
	loaded *sync.WaitGroup
	once   sync.Once
}

func (s *barrierStore) Load(ctx context.Context, name string) (tracking.State, bool, error) {
	state, ok, err := s.Store.Load(ctx, name)
	s.once.Do(func() {
		s.loaded.Done()
		s.loaded.Wait()
	})
	return state, ok, err
}

// rivalStore lets a rival writer advance projection "c" just before each of the runner's batches.
type rivalStore struct{ *memory.Store }

func (s rivalStore) Apply(ctx context.Context, name string, prev, next tracking.State, fn func(context.Context, *memory.Tx) error) error {
	if name == "c" {
		if err := s.Store.Apply(ctx, name, prev, next, func(context.Context, *memory.Tx) error { return nil }); err != nil {
			return err
		}
	}
	return s.Store.Apply(ctx, name, prev, next, fn)
}

// A conflict stop is not on an event: Skip refuses, Resume reloads the tracked position.
func TestResumeAfterAConflict(t *testing.T) {
	log := projectiontest.NewLog()
	mem := memory.New()
	e := log.Append("s", topicA, nil)
	rs := &onceRival{Store: mem}
	r := projection.NewRunner(log, rs, fastOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	eventually(t, "the conflict to stop the projection", func() bool { return status(r, "c").State == projection.StateStopped })
	if st := status(r, "c"); st.Failed != nil || !strings.Contains(st.Error, "another instance") {
		t.Errorf("status = %+v, want a conflict error and no failed event", st)
	}
	if err := r.Skip("c"); !errors.Is(err, projection.ErrNotStopped) {
		t.Errorf("Skip after a conflict = %v, want ErrNotStopped", err)
	}
	if err := r.Resume("c"); err != nil {
		t.Fatal(err)
	}
	wait(t, r, "c", e.Position.Commit)
	if got := mem.Int("c/total"); got != 1 {
		t.Errorf("count = %d, want 1", got)
	}
}

// onceRival advances the tracking of "c" under the runner once, before its first batch.
type onceRival struct {
	*memory.Store
	once sync.Once
}

func (s *onceRival) Apply(ctx context.Context, name string, prev, next tracking.State, fn func(context.Context, *memory.Tx) error) error {
	var err error
	s.once.Do(func() {
		err = s.Store.Apply(ctx, name, prev, tracking.State{Checkpoint: 1}, func(context.Context, *memory.Tx) error { return nil })
	})
	if err != nil {
		return err
	}
	return s.Store.Apply(ctx, name, prev, next, fn)
}

// Under leadership a conflict means a former leader committed late: the runner reloads and goes
// on instead of stopping.
func TestAConflictUnderLeadershipIsRetried(t *testing.T) {
	log := projectiontest.NewLog()
	mem := memory.New()
	e := log.Append("s", topicA, nil)
	rec := &recorder{}
	opts := fastOptions(rec)
	opts.Leader = projectiontest.NewLeader()
	r := projection.NewRunner(log, &onceRival{Store: mem}, opts)
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", e.Position.Commit)
	got := rec.snapshot()
	if mem.Int("c/total") != 1 || !contains(got.errs, "conflict") || contains(states(got.states), "stopped") {
		t.Errorf("count %d, errors %v, states %v; want 1, a conflict reported, never stopped", mem.Int("c/total"), got.errs, got.states)
	}
}
