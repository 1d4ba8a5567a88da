// Tests of transient and permanent faults of the source and the store: retried with backoff,
// reported once (or at every attempt when permanent), shown in Status, nothing lost.

package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

func TestRunnerRestartsDroppedSubscriptions(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	rec := &recorder{}
	log.FailSubscribe(errors.New("unavailable"), errors.New("unavailable"))
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for r.Status()[0].State != projection.StateLive && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the failed subscribes are over
	}
	for i := range 10 {
		e := log.Append("s", topicA, nil)
		if i%3 == 0 {
			for log.Subscriptions() == 0 {
				time.Sleep(time.Millisecond)
			}
			log.Drop(errors.New("connection reset"))
		}
		wait(t, r, "c", e.Position.Commit)
	}
	if got := store.Int("c/total"); got != 10 {
		t.Errorf("count = %d, want 10", got)
	}
	// Two failed subscribes are one outage, reported once; each drop is reported (the last
	// drop's report may follow the wait for its event, which was committed before the drop).
	poll.Until(t, 10*time.Second, "the fourth subscription restart", func() bool { return rec.snapshot().restarts >= 4 })
	if got := rec.snapshot(); got.restarts != 4 || len(got.errs) != 1 || got.errs[0] != "source" {
		t.Errorf("subscription restarts = %d and errors %v, want 4 (one per drop) and [source] (the failed subscribes)", got.restarts, got.errs)
	}
}

// flakyStore fails the first n commits of each batch with a store error.
type flakyStore struct {
	*memory.Store
	mu    sync.Mutex
	fails int
}

func (s *flakyStore) Apply(ctx context.Context, name string, prev, next tracking.State, fn func(context.Context, *memory.Tx) error) error {
	s.mu.Lock()
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("connection reset by peer")
	}
	return s.Store.Apply(ctx, name, prev, next, fn)
}

func TestRunnerRetriesTransientStoreFailuresWithoutLosingEvents(t *testing.T) {
	log := projectiontest.NewLog()
	store := &flakyStore{Store: memory.New(), fails: 3}
	var last projection.Event
	for range 20 {
		last = log.Append("s", topicA, nil)
	}
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{BatchSize: 6}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", last.Position.Commit)
	if got := store.Int("c/total"); got != 20 {
		t.Errorf("count = %d, want 20", got)
	}
	// Three failed commits in a row are one fault: reported once, one state change each way.
	got := rec.snapshot()
	if len(got.errs) != 1 || got.errs[0] != "store" {
		t.Errorf("errors = %v, want [store]", got.errs)
	}
	retrying := 0
	for _, s := range got.states {
		if s == projection.StateRetrying {
			retrying++
		}
	}
	if retrying != 1 {
		t.Errorf("states = %v, want retrying entered once", got.states)
	}
}

func TestPermanentSourceErrorsAreRetriedLoudly(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	denied := fmt.Errorf("%w: access denied", projection.ErrPermanent)
	log.FailSubscribe(denied, denied, denied)
	e := log.Append("s", topicA, nil)
	rec := &errRecorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", e.Position.Commit)
	got := rec.get()
	if len(got) != 3 {
		t.Fatalf("errors = %v, want each of the 3 permanent failures reported", got)
	}
	for _, err := range got {
		if !errors.Is(err, projection.ErrPermanent) || !strings.Contains(err.Error(), `projection "c"`) {
			t.Errorf("error %q: want it to wrap ErrPermanent and name the projection", err)
		}
	}
}

func TestRunnerStatusShowsTheFaultWhileRetrying(t *testing.T) {
	log := projectiontest.NewLog()
	store := &flakyStore{Store: memory.New(), fails: 1 << 30}
	e := log.Append("s", topicA, nil)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	eventually(t, "the projection to retry", func() bool { return status(r, "c").State == projection.StateRetrying })
	if st := status(r, "c"); !strings.Contains(st.Error, "connection reset by peer") || !st.Leader {
		t.Errorf("status = %+v, want the store error", st)
	}
	store.mu.Lock()
	store.fails = 0
	store.mu.Unlock()
	wait(t, r, "c", e.Position.Commit)
	eventually(t, "the projection to be live", func() bool { return status(r, "c").State == projection.StateLive })
	if st := status(r, "c"); st.Error != "" {
		t.Errorf("status after recovery = %+v, want no error", st)
	}
}
