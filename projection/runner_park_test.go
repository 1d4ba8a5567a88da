// Tests of the park error policy: a failing event parks its stream (and the stream's later
// events) while the other streams go on; ResumeStream replays the parked events in order,
// exactly once; SkipStream moves them to the dead letters.

package projection_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// streamOrder is a projection that appends the revision of each event it applies to the list
// under "<name>/order/<stream>", and fails every event of a broken stream whose revision is at
// least the stream's broken revision.
type streamOrder struct {
	name   string
	mu     sync.Mutex
	broken map[string]uint64
}

func (o *streamOrder) breakAt(stream string, rev uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.broken[stream] = rev
}

func (o *streamOrder) fix(stream string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.broken, stream)
}

func (o *streamOrder) fails(e projection.Event) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	rev, ok := o.broken[e.Stream]
	return ok && e.Revision >= rev
}

func (o *streamOrder) apply(tx *memory.Tx, e projection.Event) error {
	if o.fails(e) {
		return fmt.Errorf("stream %s is broken at revision %d", e.Stream, e.Revision)
	}
	key := o.name + "/order/" + e.Stream
	var revs []uint64
	if v, ok := tx.Get(key); ok {
		revs = slices.Clone(v.([]uint64))
	}
	tx.Set(key, append(revs, e.Revision))
	return nil
}

func (o *streamOrder) handler() *projection.Dispatch[*memory.Tx] {
	return projection.New[*memory.Tx](o.name).On(topicA, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		return o.apply(tx, e)
	})
}

func (o *streamOrder) batch() *projection.Batch[*memory.Tx] {
	return projection.NewBatch(o.name, []string{topicA}, func(_ context.Context, tx *memory.Tx, events []projection.Event) error {
		for _, e := range events {
			if err := o.apply(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func order(store *memory.Store, name, stream string) []uint64 {
	v, _ := store.Get(name + "/order/" + stream)
	revs, _ := v.([]uint64)
	return revs
}

func revisions(n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}

// appendRound appends one event to each stream, in turn, rounds times.
func appendRound(log *projectiontest.Log, rounds int, streams ...string) projection.Event {
	var last projection.Event
	for range rounds {
		for _, s := range streams {
			last = log.Append(s, topicA, nil)
		}
	}
	return last
}

var parkPolicy = projection.ProjectionOptions{OnError: projection.ErrorPolicy{Policy: projection.PolicyPark}}

func runParked(t *testing.T, batch bool, size, partitions int) (*projectiontest.Log, *memory.Store, *streamOrder, *projection.Runner[*memory.Tx], *recorder) {
	t.Helper()
	log := projectiontest.NewLog()
	store := memory.New()
	o := &streamOrder{name: "p", broken: map[string]uint64{"b": 1}}
	rec := &recorder{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	var p projection.Projection[*memory.Tx] = o.handler()
	if batch {
		p = o.batch()
	}
	opts := parkPolicy
	opts.BatchSize, opts.Partitions = size, partitions
	if err := r.Add(p, opts); err != nil {
		t.Fatal(err)
	}
	return log, store, o, r, rec
}

// checkParkAndResume appends to streams a, b and c while b fails from revision 1, checks that
// only b is parked (behind its revision 1), then fixes b and resumes it.
func checkParkAndResume(t *testing.T, batch bool, size int) {
	checkParkAndResumeIn(t, batch, size, 0)
}

// checkParkAndResumeIn is checkParkAndResume for a projection in so many partitions.
func checkParkAndResumeIn(t *testing.T, batch bool, size, partitions int) {
	log, store, o, r, rec := runParked(t, batch, size, partitions)
	last := appendRound(log, 3, "a", "b", "c")
	start(t, r)
	wait(t, r, "p", last.Position.Commit)
	if got := order(store, "p", "a"); !slices.Equal(got, revisions(3)) {
		t.Errorf("stream a applied %v, want %v", got, revisions(3))
	}
	if got := order(store, "p", "b"); !slices.Equal(got, []uint64{0}) {
		t.Errorf("stream b applied %v, want only [0] (parked from revision 1)", got)
	}
	parked, err := store.ParkedStreams(context.Background(), "p")
	if err != nil || len(parked) != 1 || parked[0].Stream != "b" || parked[0].Events != 2 || parked[0].First.Event.Revision != 1 || !strings.Contains(parked[0].First.Error, "broken at revision 1") {
		t.Fatalf("parked streams = %+v, %v; want stream b with revisions 1 and 2, first failing", parked, err)
	}
	if st := status(r, "p"); st.ParkedStreams != 1 || st.State == projection.StateStopped {
		t.Errorf("status = %+v, want 1 parked stream and not stopped", st)
	}
	if got := rec.snapshot().failed; !slices.Equal(got, []string{"park"}) {
		t.Errorf("failures reported = %v, want one park", got)
	}

	// Later events of b are parked behind it, without running the handler; the rest goes on.
	o.fix("b")
	last = appendRound(log, 2, "b", "a")
	wait(t, r, "p", last.Position.Commit)
	if got := order(store, "p", "b"); !slices.Equal(got, []uint64{0}) {
		t.Errorf("stream b applied %v while parked, want [0]", got)
	}
	if got := order(store, "p", "a"); !slices.Equal(got, revisions(5)) {
		t.Errorf("stream a applied %v, want %v", got, revisions(5))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := r.ResumeStream(ctx, "p", "b")
	if err != nil || n != 4 {
		t.Fatalf("ResumeStream = %d, %v; want 4 replayed", n, err)
	}
	if got := order(store, "p", "b"); !slices.Equal(got, revisions(5)) {
		t.Errorf("stream b applied %v after the resume, want %v (in order, once)", got, revisions(5))
	}
	if parked, _ := store.ParkedStreams(ctx, "p"); len(parked) != 0 || status(r, "p").ParkedStreams != 0 {
		t.Errorf("parked streams after the resume = %+v (status %d), want none", parked, status(r, "p").ParkedStreams)
	}
	if _, err := r.ResumeStream(ctx, "p", "b"); !errors.Is(err, projection.ErrNotParked) {
		t.Errorf("a second ResumeStream = %v, want ErrNotParked", err)
	}
	last = appendRound(log, 1, "b")
	wait(t, r, "p", last.Position.Commit)
	if got := order(store, "p", "b"); !slices.Equal(got, revisions(6)) {
		t.Errorf("stream b applied %v after a new event, want %v", got, revisions(6))
	}
}

func TestParkParksOnlyTheFailingStreamAndResumeReplaysItInOrder(t *testing.T) {
	checkParkAndResume(t, false, 0)
}

func TestParkIsolatesTheStreamInABatchOfSeveralStreams(t *testing.T) {
	checkParkAndResume(t, false, 100)
}

func TestParkTakesAParkedStreamsEventsOutOfABatchProjectionsBatch(t *testing.T) {
	checkParkAndResume(t, true, 100)
}

func TestParkedStreamStaysParkedWhenTheReplayFailsAgain(t *testing.T) {
	log, store, o, r, _ := runParked(t, false, 0, 0)
	last := appendRound(log, 4, "a", "b")
	start(t, r)
	wait(t, r, "p", last.Position.Commit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Still broken: nothing is replayed.
	o.breakAt("b", 1)
	if n, err := r.ResumeStream(ctx, "p", "b"); !errors.Is(err, projection.ErrStillFailing) || n != 0 {
		t.Fatalf("ResumeStream on a broken stream = %d, %v; want 0 and ErrStillFailing", n, err)
	}
	// Fixed up to revision 2: revisions 1 and 2 are replayed, 3 stays parked with the new error.
	o.breakAt("b", 3)
	n, err := r.ResumeStream(ctx, "p", "b")
	if !errors.Is(err, projection.ErrStillFailing) || n != 2 {
		t.Fatalf("ResumeStream = %d, %v; want 2 replayed and ErrStillFailing", n, err)
	}
	if got := order(store, "p", "b"); !slices.Equal(got, revisions(3)) {
		t.Errorf("stream b applied %v, want %v", got, revisions(3))
	}
	parked, _ := store.ParkedStreams(ctx, "p")
	if len(parked) != 1 || parked[0].Events != 1 || parked[0].First.Event.Revision != 3 || !strings.Contains(parked[0].First.Error, "broken at revision 3") {
		t.Fatalf("parked streams = %+v, want b from revision 3 with its new error", parked)
	}
	if st := status(r, "p"); st.ParkedStreams != 1 {
		t.Errorf("status parked streams = %d, want 1", st.ParkedStreams)
	}
	o.fix("b")
	if n, err := r.ResumeStream(ctx, "p", "b"); err != nil || n != 1 {
		t.Fatalf("ResumeStream = %d, %v; want 1", n, err)
	}
	if got := order(store, "p", "b"); !slices.Equal(got, revisions(4)) {
		t.Errorf("stream b applied %v, want %v", got, revisions(4))
	}
}

func TestSkipStreamMovesTheParkedEventsToTheDeadLetters(t *testing.T) {
	log, store, _, r, rec := runParked(t, false, 0, 0)
	last := appendRound(log, 3, "a", "b")
	start(t, r)
	wait(t, r, "p", last.Position.Commit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.SkipStream(ctx, "p", "nope"); !errors.Is(err, projection.ErrNotParked) {
		t.Errorf("SkipStream of a stream not parked = %v, want ErrNotParked", err)
	}
	n, err := r.SkipStream(ctx, "p", "b")
	if err != nil || n != 2 {
		t.Fatalf("SkipStream = %d, %v; want 2", n, err)
	}
	dl := store.DeadLetters()
	if len(dl) != 2 || dl[0].Event.Revision != 1 || dl[1].Event.Revision != 2 || !strings.Contains(dl[0].Error, "broken at revision 1") || !strings.Contains(dl[1].Error, "parked behind") {
		t.Errorf("dead letters = %+v, want b's revisions 1 and 2", dl)
	}
	if got := rec.snapshot().dead; got != 2 {
		t.Errorf("dead letters reported = %d, want 2", got)
	}
	if parked, _ := store.ParkedStreams(ctx, "p"); len(parked) != 0 {
		t.Errorf("parked streams = %+v, want none", parked)
	}
}

func TestParkedStreamsAreLoadedWhenTheProjectionStarts(t *testing.T) {
	log, store, o, r, _ := runParked(t, false, 0, 0)
	last := appendRound(log, 2, "a", "b")
	stop := start(t, r)
	wait(t, r, "p", last.Position.Commit)
	stop()

	// A new runner on the same store parks b's later events though its handler now succeeds.
	o.fix("b")
	r2 := projection.NewRunner(log, store, fastOptions(nil))
	if err := r2.Add(o.handler(), parkPolicy); err != nil {
		t.Fatal(err)
	}
	last = appendRound(log, 1, "b", "a")
	start(t, r2)
	wait(t, r2, "p", last.Position.Commit)
	if got := order(store, "p", "b"); !slices.Equal(got, []uint64{0}) {
		t.Errorf("stream b applied %v, want [0]: the restarted runner must keep it parked", got)
	}
	parked, _ := store.ParkedStreams(context.Background(), "p")
	if len(parked) != 1 || parked[0].Events != 2 {
		t.Errorf("parked streams = %+v, want b with 2 events", parked)
	}
}

func TestParkNeedsAStoreThatParks(t *testing.T) {
	r := projection.NewRunner(projectiontest.NewLog(), projection.Store[*memory.Tx](noParking{memory.New()}), projection.Options{})
	err := r.Add(counter("c", topicA), parkPolicy)
	if err == nil || !strings.Contains(err.Error(), "park") {
		t.Errorf("Add = %v, want an error about parking", err)
	}
}

// noParking hides the memory store's Parker.
type noParking struct{ *memory.Store }

func (noParking) Park() {}

// Only the runner that leads the projection takes a stream command; a standby refuses it with
// ErrNotLeader. After the lease moves, the new leader knows the parked streams (loaded at its
// session's start) and resumes them, and the old one shows none.
func TestParkedStreamCommandsBelongToTheLeader(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	leader := projectiontest.NewLeader()
	o := &streamOrder{name: "p", broken: map[string]uint64{"b": 1}}
	last := appendRound(log, 3, "a", "b")
	var runners []*projection.Runner[*memory.Tx]
	var stops []func()
	for i := range 2 {
		opts := fastOptions(nil)
		opts.Leader = leader
		r := projection.NewRunner(log, store, opts)
		if err := r.Add(o.handler(), parkPolicy); err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		stops = append(stops, start(t, r))
		if i == 0 {
			eventually(t, "the first runner to lead", func() bool { return status(r, "p").Leader })
		}
	}
	first, second := runners[0], runners[1]
	wait(t, store, "p", last.Position.Commit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := second.ResumeStream(ctx, "p", "b"); !errors.Is(err, projection.ErrNotLeader) {
		t.Errorf("ResumeStream on the standby = %v, want ErrNotLeader", err)
	}
	if _, err := second.ResumeStream(ctx, "nope", "b"); err == nil || !strings.Contains(err.Error(), "unknown projection") {
		t.Errorf("ResumeStream of an unknown projection = %v", err)
	}
	if ps, err := second.ParkedStreams(ctx, "p"); err != nil || len(ps) != 1 {
		t.Errorf("ParkedStreams on the standby = %+v, %v; want b, read from the store", ps, err)
	}
	if status(first, "p").ParkedStreams != 1 || status(second, "p").ParkedStreams != 0 {
		t.Errorf("parked streams shown: leader %d, standby %d; want 1 and 0", status(first, "p").ParkedStreams, status(second, "p").ParkedStreams)
	}

	// The lease moves (the leader stops): the new leader parks b's later events too, and
	// resumes it.
	stops[0]()
	eventually(t, "the second runner to lead", func() bool { return status(second, "p").Leader })
	if n := status(first, "p").ParkedStreams; n != 0 {
		t.Errorf("the old leader shows %d parked streams, want 0", n)
	}
	o.fix("b")
	last = appendRound(log, 1, "b")
	wait(t, store, "p", last.Position.Commit)
	if got := order(store, "p", "b"); !slices.Equal(got, []uint64{0}) {
		t.Errorf("stream b applied %v under the new leader, want [0]", got)
	}
	var n int
	var err error
	eventually(t, "the new leader to take the resume", func() bool {
		n, err = second.ResumeStream(ctx, "p", "b")
		return !errors.Is(err, projection.ErrNotLeader)
	})
	if err != nil || n != 3 {
		t.Fatalf("ResumeStream on the new leader = %d, %v; want 3", n, err)
	}
	if got := order(store, "p", "b"); !slices.Equal(got, revisions(4)) {
		t.Errorf("stream b applied %v, want %v", got, revisions(4))
	}
}

// In a projection partitioned by stream, the partition of the failing stream parks it under
// the projection's name while the other partitions go on, and ResumeStream reaches that
// partition.
func TestParkInAPartitionedProjection(t *testing.T) {
	checkParkAndResumeIn(t, false, 10, 3)
}

func TestParkNeedsStreamsKeptInOnePartition(t *testing.T) {
	r := projection.NewRunner(projectiontest.NewLog(), memory.New(), fastOptions(&recorder{}))
	opts := parkPolicy
	opts.Partitions, opts.PartitionBy = 2, "data.tenant"
	err := r.Add((&streamOrder{name: "p"}).handler(), opts)
	if err == nil || !strings.Contains(err.Error(), "partition by") {
		t.Fatalf("Add = %v, want an error asking for partitions by stream", err)
	}
}
