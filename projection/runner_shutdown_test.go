// Tests of shutdown: the batch in flight commits within the drain timeout or is rolled back,
// and an unreachable source does not delay the end.

package projection_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

// On cancel, the batch in flight finishes and commits within the drain timeout; the lease is
// released and every goroutine ends (goleak checks the package).
func TestShutdownDrainsTheBatchInFlight(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	evs := appendEvents(log, 5)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := projection.New[*memory.Tx]("c").On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		once.Do(func() { close(entered); <-release })
		tx.Add("c/total", 1)
		return nil
	})
	opts := fastOptions(nil)
	opts.Leader = leader
	opts.DrainTimeout = 5 * time.Second
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 5, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(50 * time.Millisecond) // Run's context has ended; the handler still runs
	select {
	case <-stopped:
		t.Fatal("Run returned before the batch in flight finished")
	default:
	}
	close(release)
	<-stopped
	s, _, _ := store.Load(context.Background(), "c")
	if got := store.Int("c/total"); got != 5 || s.Last != evs[4].Position {
		t.Errorf("after the drain: count %d at %v, want 5 at %v", got, s.Last, evs[4].Position)
	}
	if leader.Held("c") {
		t.Error("the lease is still held after Run returned")
	}
	if st := status(r, "c"); st.State != projection.StateDone || st.Leader {
		t.Errorf("status after Run = %+v, want done, not leader", st)
	}
}

func TestShutdownRollsBackABatchThatOutlivesTheDrainTimeout(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	for range 5 {
		log.Append("s", topicA, nil)
	}
	entered := make(chan struct{})
	var once sync.Once
	p := projection.New[*memory.Tx]("c").On(topicA, func(ctx context.Context, tx *memory.Tx, e projection.Event) error {
		once.Do(func() { close(entered); <-ctx.Done() })
		tx.Add("c/total", 1)
		return nil
	})
	rec := &recorder{}
	opts := fastOptions(rec)
	opts.DrainTimeout = 100 * time.Millisecond
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 5, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	<-entered
	began := time.Now()
	stop()
	if d := time.Since(began); d < opts.DrainTimeout {
		t.Errorf("Run returned after %v, before the drain timeout %v", d, opts.DrainTimeout)
	}
	if _, ok, _ := store.Load(context.Background(), "c"); ok || store.Int("c/total") != 0 {
		t.Errorf("the batch that outlived the drain timeout was committed: count %d", store.Int("c/total"))
	}
	if got := rec.snapshot().errs; len(got) != 1 || got[0] != "store" {
		t.Errorf("errors = %v, want the rolled-back batch reported once", got)
	}
}

// hangingSource never answers a subscribe, as an unreachable server that the client keeps
// trying to reach.
type hangingSource struct{ calls chan struct{} }

func (s hangingSource) Subscribe(ctx context.Context, _ []string, _ tracking.State) (projection.Subscription, error) {
	s.calls <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// Waiting for an unreachable source does not hold a shutdown up for the drain timeout: only a
// batch in flight does.
func TestShutdownIsPromptWhileTheSourceIsUnreachable(t *testing.T) {
	src := hangingSource{calls: make(chan struct{}, 1)}
	opts := fastOptions(nil)
	opts.DrainTimeout = time.Minute
	r := projection.NewRunner(src, memory.New(), opts)
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	<-src.calls
	began := time.Now()
	stop()
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Run took %v to return, want it at once", d)
	}
}

// A zero DrainTimeout means no drain: the batch in flight is rolled back at once. (Were it
// read as some default, the handler would finish after its own wait and the batch commit.)
func TestShutdownWithZeroDrainTimeoutRollsBackAtOnce(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	appendEvents(log, 3)
	entered := make(chan struct{})
	var once sync.Once
	p := projection.New[*memory.Tx]("c").On(topicA, func(ctx context.Context, tx *memory.Tx, e projection.Event) error {
		once.Do(func() {
			close(entered)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		})
		tx.Add("c/total", 1)
		return nil
	})
	opts := fastOptions(nil)
	opts.DrainTimeout = 0
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 3, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	<-entered
	stop()
	if _, ok, _ := store.Load(context.Background(), "c"); ok || store.Int("c/total") != 0 {
		t.Errorf("with DrainTimeout 0 the batch in flight was committed: count %d", store.Int("c/total"))
	}
}

// A negative DrainTimeout has no meaning: Run refuses to start, naming the option.
func TestRunRefusesANegativeDrainTimeout(t *testing.T) {
	opts := fastOptions(nil)
	opts.DrainTimeout = -time.Second
	r := projection.NewRunner(projectiontest.NewLog(), memory.New(), opts)
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "DrainTimeout -1s") {
		t.Fatalf("Run = %v, want an error naming DrainTimeout -1s", err)
	}
}
