package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

func (r *recorder) BatchCommitted(_ string, n int, _ time.Duration, _ tracking.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, n)
}
func (r *recorder) EventFailed(_ string, e projection.Event, _ error, policy string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, policy)
}
func (r *recorder) EventDeadLettered(string, projection.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead++
}
func (r *recorder) Error(_, kind string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, kind)
}
func (r *recorder) SubscriptionRestarted(string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarts++
}
func (r *recorder) StateChanged(_ string, _, to projection.RunState, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, to)
}
func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{batches: append([]int(nil), r.batches...), failed: append([]string(nil), r.failed...), dead: r.dead,
		errs: append([]string(nil), r.errs...), restarts: r.restarts, states: append([]projection.RunState(nil), r.states...)}
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

func TestTwoRunnersOnOneProjectionNeverDoubleApply(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	for range 2000 {
		log.Append("s", topicA, nil)
	}
	var runners []*projection.Runner[*memory.Tx]
	for range 2 {
		r := projection.NewRunner(log, store, fastOptions(nil))
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
	// Two failed subscribes are one outage, reported once; each drop is reported.
	if got := rec.snapshot(); got.restarts != 4 || len(got.errs) != 1 || got.errs[0] != "source" {
		t.Errorf("subscription restarts = %d and errors %v, want 4 (one per drop) and [source] (the failed subscribes)", got.restarts, got.errs)
	}
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

func TestErrorPolicyStopHaltsOnlyThatProjection(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 5)
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(failOn("bad", map[uint64]int{evs[2].Position.Commit: -1}), projection.ProjectionOptions{BatchSize: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(counter("good", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	s := wait(t, r, "bad", evs[1].Position.Commit)
	wait(t, r, "good", evs[4].Position.Commit)
	deadline := time.Now().Add(5 * time.Second)
	for r.Status()[0].State != projection.StateStopped && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := r.Status()[0]
	if st.State != projection.StateStopped || st.Failed == nil || st.Failed.Position != evs[2].Position || !strings.Contains(st.Failed.Error, "bad event") {
		t.Fatalf("status = %+v, want stopped on event at %v", st, evs[2].Position)
	}
	if got := store.Int("bad/total"); got != 2 || s.Last != evs[1].Position {
		t.Errorf("bad projection count %d at %v, want 2 at %v", got, s.Last, evs[1].Position)
	}
	if got := store.Int("good/total"); got != 5 {
		t.Errorf("good projection count %d, want 5", got)
	}
}

func TestErrorPolicyRetryRecoversFromATransientHandlerError(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 5)
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	pol := projection.ErrorPolicy{Kind: projection.PolicyRetry, Retries: 3, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	if err := r.Add(failOn("c", map[uint64]int{evs[3].Position.Commit: 2}), projection.ProjectionOptions{OnError: pol}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", evs[4].Position.Commit)
	if got := store.Int("c/total"); got != 5 {
		t.Errorf("count = %d, want 5", got)
	}
	if got := rec.snapshot().failed; len(got) != 2 || got[0] != "retry" {
		t.Errorf("failures reported = %v, want two retries", got)
	}
}

func TestErrorPolicySkipDeadLettersThePoisonEvent(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 10)
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	bad := map[uint64]int{evs[3].Position.Commit: -1, evs[7].Position.Commit: -1}
	if err := r.Add(failOn("c", bad), projection.ProjectionOptions{OnError: projection.ErrorPolicy{Kind: projection.PolicySkip}}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", evs[9].Position.Commit)
	if got := store.Int("c/total"); got != 8 {
		t.Errorf("count = %d, want 8", got)
	}
	dl := store.DeadLetters()
	if len(dl) != 2 || dl[0].Event.ID != evs[3].ID || dl[1].Event.ID != evs[7].ID || dl[0].Error != fmt.Sprintf("bad event %d", evs[3].Position.Commit) {
		t.Errorf("dead letters = %+v, want events 3 and 7", dl)
	}
	if got := rec.snapshot().dead; got != 2 {
		t.Errorf("dead letters reported = %d, want 2", got)
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
		{counter("n", topicA), projection.ProjectionOptions{OnError: projection.ErrorPolicy{Kind: "ignore"}}, `OnError.Kind "ignore"`},
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

func TestAPanickingHandlerIsAHandlerError(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	log.Append("s", topicA, nil)
	p := projection.New[*memory.Tx]("c").On(topicA, func(context.Context, *memory.Tx, projection.Event) error { panic("nil map") })
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	deadline := time.Now().Add(5 * time.Second)
	for r.Status()[0].State != projection.StateStopped && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.Status()[0]; st.Failed == nil || !strings.Contains(st.Failed.Error, "handler panicked: nil map") {
		t.Errorf("status = %+v, want stopped on the panic", st)
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
