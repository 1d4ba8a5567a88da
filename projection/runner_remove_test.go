// Tests of projections added and removed while the Runner runs: the others' workers, leases
// and subscriptions are untouched, a removed projection drains and releases its lease, a
// partitioned one comes and goes as a group, and waits go on for the projection added again.

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

// changes records the state changes of each projection (partitions under their own names).
type changes struct {
	projection.NopObserver
	mu sync.Mutex
	by map[string][]projection.RunState
}

func (c *changes) StateChanged(sc projection.StateChange) {
	name := sc.Projection
	if sc.Partition != "" {
		name = sc.Partition
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string][]projection.RunState{}
	}
	c.by[name] = append(c.by[name], sc.To)
}

func (c *changes) of(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return states(c.by[name])
}

// countingLog is a Log that counts the subscribes.
type countingLog struct {
	*projectiontest.Log
	mu    sync.Mutex
	calls int
}

func (l *countingLog) Subscribe(ctx context.Context, topics []string, from tracking.State) (projection.Subscription, error) {
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
	return l.Log.Subscribe(ctx, topics, from)
}

func (l *countingLog) subscribes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

func names(sts []projection.Status) []string {
	out := make([]string, len(sts))
	for i, s := range sts {
		out[i] = s.Name
	}
	return out
}

// Removing projection a and adding it again while the runner runs leaves b and the partitions
// of c as they were: no new lease, no new subscription, no state change; a resumes from its
// tracked position, with no event lost or applied twice.
func TestRemoveAndAddWhileRunningLeaveTheOthersUntouched(t *testing.T) {
	log := &countingLog{Log: projectiontest.NewLog()}
	store := memory.New()
	leader := projectiontest.NewLeader()
	appendEvents(log.Log, 30)
	obs := &changes{}
	opts := fastOptions(obs)
	opts.Leader = leader
	r := projection.NewRunner(log, store, opts)
	for _, add := range []struct {
		name  string
		parts int
	}{{"a", 0}, {"b", 0}, {"c", 3}} {
		if err := r.Add(counter(add.name, topicA), projection.ProjectionOptions{BatchSize: 7, Partitions: add.parts}); err != nil {
			t.Fatal(err)
		}
	}
	start(t, r)
	last := log.Events()[29].Position.Commit
	for _, n := range []string{"a", "b", "c"} {
		wait(t, r, n, last)
	}
	others := []string{"b", "c#0", "c#1", "c#2"}
	eventually(t, "every projection live", func() bool {
		for _, n := range append([]string{"a"}, others...) {
			if st := obs.of(n); len(st) == 0 || st[len(st)-1] != string(projection.StateLive) {
				return false
			}
		}
		return true
	})
	before := map[string][]string{}
	for _, n := range others {
		before[n] = obs.of(n)
	}
	subscribes := log.subscribes()
	if got := log.Subscriptions(); got != 5 {
		t.Fatalf("%d subscriptions open, want 5", got)
	}

	if err := r.Remove(context.Background(), "a"); err != nil {
		t.Fatalf("Remove(a): %v", err)
	}
	if got := names(r.Status()); len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Fatalf("status after Remove(a) names %v, want [b c]", got)
	}
	if leader.Held("a") {
		t.Error("a's lease is still held after Remove returned")
	}
	if st := obs.of("a"); st[len(st)-1] != string(projection.StateDone) {
		t.Errorf("a's state changes %v, want to end done", st)
	}
	if got := log.Subscriptions(); got != 4 {
		t.Errorf("%d subscriptions open after Remove(a), want 4", got)
	}
	if _, err := r.Wait(context.Background(), "a", 1); !errors.Is(err, tracking.ErrUnknownProjection) {
		t.Errorf("Wait(a) after Remove: %v, want ErrUnknownProjection", err)
	}
	for range 20 {
		log.Append("s", topicA, nil)
	}
	last = log.Events()[49].Position.Commit
	wait(t, r, "b", last)
	wait(t, r, "c", last)
	if got := store.Int("a/total"); got != 30 {
		t.Errorf("a counted %d events while removed, want 30", got)
	}

	if err := r.Add(counter("a", topicA), projection.ProjectionOptions{BatchSize: 7}); err != nil {
		t.Fatalf("Add(a) while running: %v", err)
	}
	wait(t, r, "a", last)
	if got := store.Int("a/total"); got != 50 {
		t.Errorf("a counted %d events after it was added again, want 50 (resumed from its tracked position)", got)
	}
	if got := names(r.Status()); len(got) != 3 || got[2] != "a" {
		t.Errorf("status after Add(a) names %v, want [b c a]", got)
	}
	if got, want := log.subscribes(), subscribes+1; got != want {
		t.Errorf("%d subscribes, want %d: only the added projection subscribes", got, want)
	}
	if got := leader.Grants("a"); got != 2 {
		t.Errorf("a's lease granted %d times, want 2", got)
	}
	for _, n := range others {
		if got := leader.Grants(n); got != 1 {
			t.Errorf("%s's lease granted %d times, want 1", n, got)
		}
		if got := obs.of(n); len(got) != len(before[n]) {
			t.Errorf("%s's state changed while a was removed and added: %v, before %v", n, got, before[n])
		}
		if st := status(r, n); n == "b" && (!st.Leader || st.State != projection.StateLive) {
			t.Errorf("b's status %+v, want leading, live", st)
		}
	}
	if got := store.Int("b/total"); got != 50 {
		t.Errorf("b counted %d events, want 50", got)
	}
}

// A partitioned projection is removed, and added again, as a group; a partition's name does not
// remove it, nor does an unknown name.
func TestRemovePartitionedProjectionAsAGroup(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	for i := range 12 {
		log.Append(string(rune('a'+i)), topicA, nil)
	}
	opts := fastOptions(nil)
	opts.Leader = leader
	r := projection.NewRunner(log, store, opts)
	for _, n := range []string{"p", "q"} {
		if err := r.Add(counter(n, topicA), projection.ProjectionOptions{Partitions: 3}); err != nil {
			t.Fatal(err)
		}
	}
	start(t, r)
	last := log.Events()[11].Position.Commit
	wait(t, r, "p", last)
	wait(t, r, "q", last)
	ctx := context.Background()
	for _, bad := range []string{"p#1", "nope"} {
		if err := r.Remove(ctx, bad); !errors.Is(err, tracking.ErrUnknownProjection) {
			t.Errorf("Remove(%q): %v, want ErrUnknownProjection", bad, err)
		}
	}
	if err := r.Remove(ctx, "p"); err != nil {
		t.Fatalf("Remove(p): %v", err)
	}
	for i := range 3 {
		if leader.Held(projection.PartitionName("p", i)) {
			t.Errorf("partition %d of p still leased after Remove", i)
		}
		if leader.Grants(projection.PartitionName("q", i)) != 1 {
			t.Errorf("partition %d of q leased again", i)
		}
	}
	if got := names(r.Status()); len(got) != 1 || got[0] != "q" {
		t.Fatalf("status names %v, want [q]", got)
	}
	if err := r.Resume("p#0"); !errors.Is(err, tracking.ErrUnknownProjection) {
		t.Errorf("Resume(p#0) after Remove(p): %v, want ErrUnknownProjection", err)
	}
	if err := r.Add(counter("p", topicA), projection.ProjectionOptions{Partitions: 3}); err != nil {
		t.Fatalf("Add(p) again: %v", err)
	}
	log.Append("m", topicA, nil)
	last = log.Events()[12].Position.Commit
	wait(t, r, "p", last)
	wait(t, r, "q", last)
	if got := store.Int("p/total"); got != 13 {
		t.Errorf("p counted %d events, want 13", got)
	}
	if sts := r.Status(); len(sts) != 2 || sts[1].Name != "p" || len(sts[1].Partitions) != 3 {
		t.Errorf("status %+v, want q then p with 3 partitions", sts)
	}
}

// Remove lets the batch in flight commit (within the drain timeout) before it returns, and a
// Wait blocked on the removed projection is answered by the projection added again under its
// name.
func TestRemoveDrainsTheBatchAndWaitsGoOnForTheReplacement(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := projection.New[*memory.Tx]("a").On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		once.Do(func() { close(entered); <-release })
		tx.Add("a/total", 1)
		return nil
	})
	opts := fastOptions(nil)
	opts.Leader = leader
	opts.DrainTimeout = 5 * time.Second
	r := projection.NewRunner(log, store, opts)
	if err := r.Add(slow, projection.ProjectionOptions{BatchSize: 5, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(counter("b", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	evs := appendEvents(log, 5)
	<-entered

	waited := make(chan error, 1)
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		_, err := r.Wait(wctx, "a", evs[4].Position.Commit+1)
		waited <- err
	}()
	eventually(t, "the wait to block", func() bool { return r.Waiting("a") == 1 })
	removed := make(chan error, 1)
	go func() { removed <- r.Remove(context.Background(), "a") }()
	eventually(t, "Add(a) to be refused while a is being removed", func() bool {
		err := r.Add(counter("a", topicA), projection.ProjectionOptions{})
		return err != nil && strings.Contains(err.Error(), "still being removed")
	})
	select {
	case err := <-removed:
		t.Fatalf("Remove returned before the batch in flight finished: %v", err)
	default:
	}
	close(release)
	if err := <-removed; err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if s, _, _ := store.Load(context.Background(), "a"); store.Int("a/total") != 5 || s.Last != evs[4].Position {
		t.Errorf("after Remove: a counted %d at %v, want 5 at %v (the batch in flight committed)", store.Int("a/total"), s.Last, evs[4].Position)
	}
	select {
	case err := <-waited:
		t.Fatalf("the wait on a ended with its removal: %v", err)
	default:
	}
	more := log.Append("s", topicA, nil)
	if err := r.Add(counter("a", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("the wait on a: %v, want answered by the projection added again", err)
	}
	wait(t, r, "b", more.Position.Commit)
	if got := store.Int("a/total"); got != 6 {
		t.Errorf("a counted %d events, want 6", got)
	}
}

// Add and Remove refuse what they cannot do: a duplicate while running, a name still being
// removed, anything once Run has ended; before Run, Remove only forgets.
func TestAddAndRemoveRefusals(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	r := projection.NewRunner(log, store, fastOptions(nil))
	for _, n := range []string{"a", "b"} {
		if err := r.Add(counter(n, topicA), projection.ProjectionOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Remove(context.Background(), "b"); err != nil {
		t.Fatalf("Remove(b) before Run: %v", err)
	}
	if got := names(r.Status()); len(got) != 1 || got[0] != "a" {
		t.Fatalf("status names %v, want [a]", got)
	}
	stop := start(t, r)
	// Run has started once a has processed an event (a Remove before it only forgets).
	wait(t, r, "a", log.Append("s", topicA, nil).Position.Commit)
	if err := r.Add(counter("a", topicA), projection.ProjectionOptions{}); err == nil {
		t.Error("Add(a) twice while running: no error")
	}
	if err := r.Remove(context.Background(), "a"); err != nil {
		t.Fatalf("Remove(a): %v", err)
	}
	ev := log.Append("s", topicA, nil)
	if err := r.Add(counter("b", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatalf("Add(b) with no projection left running: %v", err)
	}
	wait(t, r, "b", ev.Position.Commit)
	stop()
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err == nil {
		t.Error("Add(c) after Run returned: no error")
	}
	if st := status(r, "b"); st.State != projection.StateDone {
		t.Errorf("b after Run = %+v, want done", st)
	}
	if err := r.Remove(context.Background(), "b"); err != nil {
		t.Errorf("Remove(b) after Run: %v", err)
	}
	if got := r.Status(); len(got) != 0 {
		t.Errorf("status %+v after removing every projection, want none", got)
	}
}
