// Tests of partitioned projections: routing by key, per-key order, the projection's position
// as the lowest of its partitions', resuming, and the options.

package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// inOrder counts the events of each stream under "<name>/n/<stream>" and fails on an event
// whose revision is not the next of its stream: a repeated, skipped or reordered event. With
// broken set it fails on every event of stream "bad".
func inOrder(name string, broken *atomic.Bool) *projection.Dispatch[*memory.Tx] {
	return projection.New[*memory.Tx](name).On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		if broken != nil && broken.Load() && e.Stream == "bad" {
			return errors.New("the bad stream fails")
		}
		n := tx.Add(name+"/n/"+e.Stream, 1)
		if uint64(n-1) != e.Revision {
			return fmt.Errorf("stream %s: revision %d arrived as event number %d", e.Stream, e.Revision, n-1)
		}
		return nil
	})
}

// appendStreams appends perStream events to each of streams, interleaved, and returns the last.
func appendStreams(log *projectiontest.Log, streams, perStream int) projection.Event {
	var last projection.Event
	for i := range perStream * streams {
		last = log.Append(fmt.Sprint("dog-", i%streams), topicA, nil)
	}
	return last
}

func checkCounts(t *testing.T, store *memory.Store, name string, streams, perStream int) {
	t.Helper()
	for s := range streams {
		if got := store.Int(fmt.Sprintf("%s/n/dog-%d", name, s)); got != int64(perStream) {
			t.Errorf("stream dog-%d: %d events projected, want %d", s, got, perStream)
		}
	}
}

func TestPartitionedProjectionRoutesEveryEventOnceInStreamOrder(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	last := appendStreams(log, 20, 25)
	rec := &partitionRecorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	if err := r.Add(inOrder("p", nil), projection.ProjectionOptions{Partitions: 4, BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "p", last.Position.Commit)
	checkCounts(t, store, "p", 20, 25)
	events := map[string]int{}
	for i := range 4 {
		name := projection.PartitionName("p", i)
		st, ok, _ := store.Load(context.Background(), name)
		if !ok || !st.Done(last.Position.Commit) {
			t.Errorf("partition %s tracked at %v (row %v), want past %v", name, st, ok, last.Position)
		}
		events[name] = rec.events(name)
	}
	total := 0
	for name, n := range events {
		if n == 0 {
			t.Errorf("partition %s projected no event of 20 streams", name)
		}
		total += n
	}
	if total != 500 {
		t.Errorf("the partitions projected %d events in all (%v), want 500", total, events)
	}
	if _, ok, _ := store.Load(context.Background(), "p"); ok {
		t.Error("a partitioned projection has a tracking row under its own name")
	}
	st := status(r, "p")
	if len(st.Partitions) != 4 || st.Position < last.Position.Commit || !st.Leader {
		t.Errorf("status = %+v, want 4 partitions, at %d or past", st, last.Position.Commit)
	}
	// Live: an event reaches its partition, and the others pass it at once.
	e := log.Append("dog-3", topicA, nil)
	wait(t, r, "p", e.Position.Commit)
	if got := store.Int("p/n/dog-3"); got != 26 {
		t.Errorf("dog-3: %d events, want 26", got)
	}
	for i := range 4 {
		wait(t, r, projection.PartitionName("p", i), e.Position.Commit)
	}
}

// partitionRecorder counts the events each partition commits.
type partitionRecorder struct {
	projection.NopObserver
	mu  sync.Mutex
	per map[string]int
}

func (r *partitionRecorder) BatchCommitted(b projection.CommittedBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.per == nil {
		r.per = map[string]int{}
	}
	r.per[b.Partition] += b.Events
}

func (r *partitionRecorder) events(partition string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.per[partition]
}

func TestPartitionedProjectionPositionIsTheLowestPartitions(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	var broken atomic.Bool
	broken.Store(true)
	appendStreams(log, 8, 5)
	bad := log.Append("bad", topicA, nil)
	after := appendStreams(log, 8, 5)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(inOrder("p", &broken), projection.ProjectionOptions{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	stuck := projection.PartitionName("p", projection.Partition("bad", 4))
	eventually(t, "the bad stream's partition to stop", func() bool { return status(r, "p").State == projection.StateStopped })
	for i := range 4 {
		if name := projection.PartitionName("p", i); name != stuck {
			wait(t, r, name, after.Position.Commit) // the other partitions go on
		}
	}
	st := status(r, "p")
	if st.Position >= bad.Position.Commit || st.Failed == nil || st.Failed.Stream != "bad" || !strings.HasPrefix(st.Error, stuck+": ") {
		t.Errorf("status = %+v, want stopped below %d on the bad stream, the error naming %s", st, bad.Position.Commit, stuck)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if s, err := r.Wait(ctx, "p", bad.Position.Commit); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past the stopped partition's event = %v, %v; want a timeout", s, err)
	}
	broken.Store(false)
	if err := r.Resume("p"); err != nil {
		t.Fatalf("Resume(p): %v", err)
	}
	wait(t, r, "p", after.Position.Commit)
	checkCounts(t, store, "p", 8, 10)
	if got := store.Int("p/n/bad"); got != 1 {
		t.Errorf("bad stream: %d events, want 1", got)
	}
	if err := r.Resume("p"); !errors.Is(err, projection.ErrNotStopped) {
		t.Errorf("Resume of a partitioned projection with no partition stopped = %v, want ErrNotStopped", err)
	}
	if err := r.Reset(context.Background(), "p", nil); !errors.Is(err, projection.ErrPartitionedReset) {
		t.Errorf("Reset of a partitioned projection = %v, want ErrPartitionedReset", err)
	}
}

func TestPartitionedProjectionResumesWithoutSkippingOrRepeating(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	// First unpartitioned: the partitions start where the projection's own row says.
	first := appendStreams(log, 10, 10)
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(inOrder("p", nil), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	wait(t, r, "p", first.Position.Commit)
	stop()
	// Then partitioned, stopped and restarted three times while events are appended.
	var last projection.Event
	for round := range 3 {
		last = appendStreams(log, 10, 10)
		r := projection.NewRunner(log, store, fastOptions(nil))
		if err := r.Add(inOrder("p", nil), projection.ProjectionOptions{Partitions: 3, BatchSize: 3 + round}); err != nil {
			t.Fatal(err)
		}
		stop := start(t, r)
		if round < 2 {
			// Stop it part-way: whatever each partition committed is where it resumes.
			eventually(t, "some progress", func() bool { return store.Int("p/n/dog-0") > int64(10*(round+1)) })
			stop()
			continue
		}
		wait(t, r, "p", last.Position.Commit)
		stop()
	}
	checkCounts(t, store, "p", 10, 40)
}

func TestPartitionByADataFieldKeepsEventsWithoutTheKeyTogether(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	var last projection.Event
	for i := range 60 {
		data := fmt.Sprintf(`{"tenant":"t%d","n":%d}`, i%6, i)
		switch i % 10 {
		case 3:
			data = `{"n":1}` // no tenant
		case 7:
			data = `not json`
		}
		last = log.Append(fmt.Sprint("s-", i), topicA, []byte(data))
	}
	var seen []string
	var mu sync.Mutex
	p := projection.New[*memory.Tx]("p").On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		tx.Add("p/total", 1)
		mu.Lock()
		seen = append(seen, string(e.Data))
		mu.Unlock()
		return nil
	})
	r := projection.NewRunner(log, store, fastOptions(nil))
	if err := r.Add(p, projection.ProjectionOptions{Partitions: 4, PartitionBy: "data.tenant"}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "p", last.Position.Commit)
	if got := store.Int("p/total"); got != 60 {
		t.Errorf("total = %d, want 60", got)
	}
	// The keyless events are handled by one partition, in log order.
	var keyless []string
	mu.Lock()
	for _, d := range seen {
		if !strings.Contains(d, "tenant") {
			keyless = append(keyless, d)
		}
	}
	mu.Unlock()
	if len(keyless) != 12 {
		t.Fatalf("%d keyless events handled, want 12", len(keyless))
	}
	for i := 0; i < len(keyless); i += 2 {
		if keyless[i] != `{"n":1}` || keyless[i+1] != `not json` {
			t.Fatalf("keyless events out of order: %q", keyless)
		}
	}
}

func TestPartitionKeysAndNames(t *testing.T) {
	hit := map[int]bool{}
	for i := range 100 {
		p := projection.Partition(fmt.Sprint("dog-", i), 4)
		if p < 0 || p >= 4 || p != projection.Partition(fmt.Sprint("dog-", i), 4) {
			t.Fatalf("Partition(dog-%d, 4) = %d", i, p)
		}
		hit[p] = true
	}
	if len(hit) != 4 {
		t.Errorf("100 streams hit partitions %v, want all 4", hit)
	}
	// FNV-1a of "dog-1" is 0x2e60a427 (a fixed value: partitions must not move between versions).
	if got := projection.Partition("dog-1", 1<<20); got != 0x2e60a427%(1<<20) {
		t.Errorf("Partition(dog-1) = %#x", got)
	}
	if name := projection.PartitionName("dogs", 2); name != "dogs#2" {
		t.Errorf("PartitionName = %q", name)
	}
	for name, want := range map[string]bool{"dogs#2": true, "dogs#02": false, "dogs": false, "#1": false, "dogs#x": false, "dogs#-1": false} {
		if _, _, ok := projection.SplitPartitionName(name); ok != want {
			t.Errorf("SplitPartitionName(%q) ok = %v, want %v", name, ok, want)
		}
	}
}

func TestPartitionOptionsAreValidated(t *testing.T) {
	r := projection.NewRunner(projectiontest.NewLog(), memory.New(), fastOptions(nil))
	for _, c := range []struct {
		name string
		opts projection.ProjectionOptions
		want string
	}{
		{"p", projection.ProjectionOptions{Partitions: projection.MaxPartitions + 1}, "Partitions 257: want 0 to 256"},
		{"p", projection.ProjectionOptions{Partitions: -1}, "Partitions -1"},
		{"p", projection.ProjectionOptions{Partitions: 2, PartitionBy: "tenant"}, `PartitionBy "tenant": want "stream" or "data."`},
		{"p", projection.ProjectionOptions{Partitions: 2, PartitionBy: "data..x"}, "a field name of the path is empty"},
		{"p", projection.ProjectionOptions{PartitionBy: "data.tenant"}, "needs Partitions of 2 or more"},
		{"p#1", projection.ProjectionOptions{}, `may not contain "#"`},
	} {
		err := r.Add(counter(c.name, topicA), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Add(%q, %+v) = %v, want an error containing %q", c.name, c.opts, err, c.want)
		}
	}
	if err := r.Add(counter("p", topicA), projection.ProjectionOptions{Partitions: 2, PartitionBy: "stream"}); err != nil {
		t.Errorf("Add with PartitionBy stream: %v", err)
	}
}
