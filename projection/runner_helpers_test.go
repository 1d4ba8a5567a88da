// Helpers shared by the runner's tests: projections that count or fail, an observer that
// records, starting a runner, waiting and polling.

package projection_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	topicA = "__main__:Dog.Registered"
	topicB = "__main__:Dog.TrickAdded"
	decoy  = "__main__:DogXRegistered" // what an unescaped "." would match
)

// counter counts events per type in the memory view, under "<name>/<type>".
func counter(name string, topics ...string) *projection.Dispatch[*memory.Tx] {
	p := projection.New[*memory.Tx](name)
	for _, t := range topics {
		p.On(t, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
			tx.Add(name+"/"+e.Type, 1)
			tx.Add(name+"/total", 1)
			return nil
		})
	}
	return p
}

func failOn(name string, bad map[uint64]int) *projection.Dispatch[*memory.Tx] {
	var mu sync.Mutex
	return projection.New[*memory.Tx](name).On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if n := bad[e.Position.Commit]; n != 0 {
			if n > 0 {
				bad[e.Position.Commit] = n - 1
			}
			return fmt.Errorf("bad event %d", e.Position.Commit)
		}
		tx.Add(name+"/total", 1)
		return nil
	})
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	projection.NopObserver
	mu       sync.Mutex
	batches  []int
	failed   []string
	dead     int
	errs     []string
	restarts int
	states   []projection.RunState
}

func (r *recorder) BatchCommitted(b projection.CommittedBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, b.Events)
}
func (r *recorder) EventFailed(f projection.FailedEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, string(f.Policy))
}
func (r *recorder) EventDeadLettered(projection.FailedEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead++
}
func (r *recorder) Error(f projection.Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, f.Kind)
}
func (r *recorder) SubscriptionRestarted(projection.Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarts++
}
func (r *recorder) StateChanged(c projection.StateChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, c.To)
}
func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{batches: append([]int(nil), r.batches...), failed: append([]string(nil), r.failed...), dead: r.dead,
		errs: append([]string(nil), r.errs...), restarts: r.restarts, states: append([]projection.RunState(nil), r.states...)}
}

type errRecorder struct {
	projection.NopObserver
	mu   sync.Mutex
	errs []error
}

func (r *errRecorder) Error(f projection.Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, f.Err)
}

func (r *errRecorder) get() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// handled counts how often a handler ran per event id, including runs that were rolled back.
type handled struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *handled) inc(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[id]++
}

func (h *handled) get(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[id]
}

// start runs r in the background and returns a function that stops it and waits.
func start(t *testing.T, r interface{ Run(context.Context) error }) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func wait(t *testing.T, w tracking.Waiter, name string, commit uint64) tracking.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := w.Wait(ctx, name, commit)
	if err != nil {
		t.Fatalf("Wait(%q, %d): %v (state %v)", name, commit, err, s)
	}
	return s
}

// eventually polls cond every few milliseconds for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func status(r *projection.Runner[*memory.Tx], name string) projection.Status {
	for _, s := range r.Status() {
		if s.Name == name {
			return s
		}
	}
	return projection.Status{}
}

// appendEvents appends n events of topicA to stream "s" of log and returns them.
func appendEvents(log *projectiontest.Log, n int) []projection.Event {
	evs := make([]projection.Event, n)
	for i := range evs {
		evs[i] = log.Append("s", topicA, nil)
	}
	return evs
}

func fastOptions(obs projection.Observer) projection.Options {
	return projection.Options{Observer: obs, CheckpointEvery: 20 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

func sumOf(xs []int) (n int) {
	for _, x := range xs {
		n += x
	}
	return n
}

func contains(xs []string, x string) bool { return count(xs, x) > 0 }

func count(xs []string, x string) (n int) {
	for _, s := range xs {
		if s == x {
			n++
		}
	}
	return n
}

func states(ss []projection.RunState) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
