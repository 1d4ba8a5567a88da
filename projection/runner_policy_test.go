// Tests of handler failures: the error policies (stop, retry, skip), panics, isolating the
// poison event, and the operator's Resume and Skip.

package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

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
	pol := projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
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
	if err := r.Add(failOn("c", bad), projection.ProjectionOptions{OnError: projection.ErrorPolicy{Policy: projection.PolicySkip}}); err != nil {
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
