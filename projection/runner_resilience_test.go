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
)

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

// Under the stop policy the events of the batch before the poison event are committed once, the
// projection halts with the event described in its status, and Resume and Skip restart it
// without a restart of the runner.
func TestStopCommitsTheGoodEventsThenResumeAndSkipRestartIt(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	var evs []projection.Event
	for i := range 10 {
		evs = append(evs, log.Append(fmt.Sprint("dog-", i%3), topicA, nil))
	}
	bad := map[uint64]int{evs[4].Position.Commit: 2, evs[7].Position.Commit: -1}
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(failOn("c", bad), projection.ProjectionOptions{BatchSize: 10, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := r.Resume("c"); !errors.Is(err, projection.ErrNotStopped) {
		t.Errorf("Resume before Run = %v, want ErrNotStopped", err)
	}
	start(t, r)
	stops := 0
	stoppedOn := func(e projection.Event) projection.Status {
		t.Helper()
		stops++
		eventually(t, fmt.Sprintf("stop %d, on the event at %v", stops, e.Position), func() bool {
			if count(rec.snapshot().failed, "stop") < stops {
				return false
			}
			st := status(r, "c")
			return st.State == projection.StateStopped && st.Failed != nil && st.Failed.Position == e.Position
		})
		return status(r, "c")
	}
	st := stoppedOn(evs[4])
	want := projection.Failure{Position: evs[4].Position, EventID: evs[4].ID, Type: topicA, Stream: evs[4].Stream, Revision: evs[4].Revision,
		Error: fmt.Sprintf("bad event %d", evs[4].Position.Commit)}
	if *st.Failed != want || !strings.Contains(st.Error, evs[4].ID) || !strings.Contains(st.Error, `projection "c"`) {
		t.Errorf("failure = %+v (error %q), want %+v", *st.Failed, st.Error, want)
	}
	if got := store.Int("c/total"); got != 4 || st.Tracking.Last != evs[3].Position {
		t.Errorf("committed %d events up to %v, want the 4 before the poison event, up to %v", got, st.Tracking.Last, evs[3].Position)
	}
	if err := r.Skip("nope"); !errors.Is(err, tracking.ErrUnknownProjection) {
		t.Errorf("Skip of an unknown projection = %v, want ErrUnknownProjection", err)
	}
	// The handler fails once more: Resume retries and stops again on the same event.
	if err := r.Resume("c"); err != nil {
		t.Fatal(err)
	}
	stoppedOn(evs[4])
	// Now it succeeds; the next poison event stops the projection again.
	if err := r.Resume("c"); err != nil {
		t.Fatal(err)
	}
	stoppedOn(evs[7])
	if got := store.Int("c/total"); got != 7 {
		t.Errorf("count = %d after resuming, want 7", got)
	}
	if err := r.Skip("c"); err != nil {
		t.Fatal(err)
	}
	wait(t, r, "c", evs[9].Position.Commit)
	if got := store.Int("c/total"); got != 9 {
		t.Errorf("count = %d after the skip, want 9", got)
	}
	dl := store.DeadLetters()
	if len(dl) != 1 || dl[0].Event.ID != evs[7].ID || dl[0].Error != fmt.Sprintf("bad event %d", evs[7].Position.Commit) {
		t.Errorf("dead letters = %+v, want event 7", dl)
	}
	eventually(t, "the projection to be live", func() bool { return status(r, "c").State == projection.StateLive })
	if st := status(r, "c"); st.Failed != nil || st.Error != "" {
		t.Errorf("status after the skip = %+v, want no failure", st)
	}
	if err := r.Skip("c"); !errors.Is(err, projection.ErrNotStopped) {
		t.Errorf("Skip of a live projection = %v, want ErrNotStopped", err)
	}
	got := rec.snapshot()
	if n := count(got.failed, "stop"); n != 3 || got.dead != 1 {
		t.Errorf("failures reported %v, dead letters %d; want 3 stops and 1 dead letter", got.failed, got.dead)
	}
}

// plainStore hides the memory store's dead letters.
type plainStore struct{ s *memory.Store }

func (p plainStore) Apply(ctx context.Context, name string, prev, next tracking.State, fn func(context.Context, *memory.Tx) error) error {
	return p.s.Apply(ctx, name, prev, next, fn)
}
func (p plainStore) Load(ctx context.Context, name string) (tracking.State, bool, error) {
	return p.s.Load(ctx, name)
}
func (p plainStore) Wait(ctx context.Context, name string, commit uint64) (tracking.State, error) {
	return p.s.Wait(ctx, name, commit)
}

func TestSkipWithoutDeadLettersRecordsTheSkipInTracking(t *testing.T) {
	log := projectiontest.NewLog()
	mem := memory.New()
	evs := appendEvents(log, 3)
	rec := &recorder{}
	r := projection.NewRunner(log, plainStore{mem}, fastOptions(rec))
	if err := r.Add(failOn("c", map[uint64]int{evs[1].Position.Commit: -1}), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	eventually(t, "the projection to stop", func() bool { return status(r, "c").State == projection.StateStopped })
	if err := r.Skip("c"); err != nil {
		t.Fatal(err)
	}
	if err := r.Skip("c"); !errors.Is(err, projection.ErrNotStopped) {
		t.Errorf("a second Skip = %v, want ErrNotStopped", err)
	}
	wait(t, r, "c", evs[2].Position.Commit)
	if got := mem.Int("c/total"); got != 2 || len(mem.DeadLetters()) != 0 {
		t.Errorf("count = %d, dead letters %d; want 2 and none", got, len(mem.DeadLetters()))
	}
	if got := rec.snapshot().failed; len(got) != 2 || got[0] != "stop" || got[1] != "skip" {
		t.Errorf("failures reported = %v, want [stop skip]", got)
	}
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

type errRecorder struct {
	projection.NopObserver
	mu   sync.Mutex
	errs []error
}

func (r *errRecorder) Error(_, _ string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *errRecorder) get() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
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
