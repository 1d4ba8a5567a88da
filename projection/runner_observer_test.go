// Tests of what the Observer's reports carry: the poison event and the operator's command on
// the state changes, and the position on every report, so that consumers keep no state.

package projection_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// reports keeps every state change and fault it is told of.
type reports struct {
	projection.NopObserver
	mu      sync.Mutex
	changes []projection.StateChange
	faults  []projection.Fault
}

func (r *reports) StateChanged(c projection.StateChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

func (r *reports) Error(f projection.Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, f)
}

func (r *reports) SubscriptionRestarted(f projection.Fault) { r.Error(f) }

// find returns the first change that matches, if any.
func (r *reports) find(match func(projection.StateChange) bool) (projection.StateChange, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.changes {
		if match(c) {
			return c, true
		}
	}
	return projection.StateChange{}, false
}

func (r *reports) all() ([]projection.StateChange, []projection.Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]projection.StateChange(nil), r.changes...), append([]projection.Fault(nil), r.faults...)
}

// TestStateChangesCarryThePoisonEventAndTheCommand stops a projection on two poison events and
// restarts it with Resume, Skip and Reset: the change to stopped carries the event and the
// position, the change out of it carries the event again and the command, and so does the
// restart after the reset.
func TestStateChangesCarryThePoisonEventAndTheCommand(t *testing.T) {
	log := projectiontest.NewLog()
	store := memory.New()
	evs := appendEvents(log, 6)
	rep := &reports{}
	r := projection.NewRunner(log, store, fastOptions(rep))
	bad := map[uint64]int{evs[2].Position.Commit: 1, evs[4].Position.Commit: -1}
	if err := r.Add(failOn("c", bad), projection.ProjectionOptions{BatchSize: 1}); err != nil {
		t.Fatal(err)
	}
	start(t, r)

	stopOn := func(e projection.Event) projection.StateChange {
		t.Helper()
		var c projection.StateChange
		eventually(t, "the stop on "+e.ID, func() bool {
			var ok bool
			c, ok = rep.find(func(c projection.StateChange) bool {
				return c.To == projection.StateStopped && c.Failed != nil && c.Failed.EventID == e.ID
			})
			return ok
		})
		return c
	}
	leave := func(cmd projection.Command) projection.StateChange {
		t.Helper()
		var c projection.StateChange
		eventually(t, "the change after "+string(cmd), func() bool {
			var ok bool
			c, ok = rep.find(func(c projection.StateChange) bool { return c.Command == cmd })
			return ok
		})
		return c
	}

	c := stopOn(evs[2])
	f := c.Failed
	if c.Projection != "c" || c.Err == nil || c.Command != "" || c.Position != evs[1].Position.Commit ||
		f.Position != evs[2].Position || f.Type != topicA || f.Stream != "s" || f.Revision != evs[2].Revision || f.Error != fmt.Sprintf("bad event %d", evs[2].Position.Commit) {
		t.Errorf("stop = %+v (failed %+v), want the event at %v with the position %d", c, f, evs[2].Position, evs[1].Position.Commit)
	}
	eventually(t, "the stopped status", func() bool { return status(r, "c").State == projection.StateStopped })
	if err := r.Resume("c"); err != nil {
		t.Fatal(err)
	}
	if c := leave(projection.CommandResume); c.From != projection.StateStopped || c.Failed == nil || c.Failed.EventID != evs[2].ID {
		t.Errorf("change after resume = %+v, want out of the stop on %s", c, evs[2].ID)
	}

	c = stopOn(evs[4])
	if c.Position != evs[3].Position.Commit {
		t.Errorf("second stop at position %d, want %d", c.Position, evs[3].Position.Commit)
	}
	eventually(t, "the stopped status", func() bool { return status(r, "c").State == projection.StateStopped })
	if err := r.Skip("c"); err != nil {
		t.Fatal(err)
	}
	if c := leave(projection.CommandSkip); c.From != projection.StateStopped || c.Failed == nil || c.Failed.EventID != evs[4].ID {
		t.Errorf("change after skip = %+v, want out of the stop on %s", c, evs[4].ID)
	}
	wait(t, r, "c", evs[5].Position.Commit)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Reset(ctx, "c", nil); err != nil {
		t.Fatal(err)
	}
	if c := leave(projection.CommandReset); c.To != projection.StateStarting || c.Failed != nil || c.Position != 0 {
		t.Errorf("change after reset = %+v, want the restart from the start, without an event", c)
	}
	changes, _ := rep.all()
	commanded := 0
	for _, c := range changes {
		if c.Command != "" {
			commanded++
		}
		if c.Failed != nil && c.To != projection.StateStopped && c.From != projection.StateStopped {
			t.Errorf("change %+v carries an event but neither enters nor leaves a stop", c)
		}
	}
	if commanded != 3 {
		t.Errorf("%d changes carry a command, want 3 (resume, skip, reset): %+v", commanded, changes)
	}
}

// TestFaultsCarryThePosition checks that a store fault is reported with the position the
// projection had committed (past the events committed, short of the one that failed), and the
// retrying state with it.
func TestFaultsCarryThePosition(t *testing.T) {
	log := projectiontest.NewLog()
	store := &flakyStore{Store: memory.New()}
	rep := &reports{}
	r := projection.NewRunner[*memory.Tx](log, store, fastOptions(rep))
	if err := r.Add(counter("c", topicA), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	first := appendEvents(log, 3)[2]
	wait(t, r, "c", first.Position.Commit)
	store.mu.Lock()
	store.fails = 1
	store.mu.Unlock()
	last := log.Append("s", topicA, nil)
	wait(t, r, "c", last.Position.Commit)
	_, faults := rep.all()
	committed := func(p uint64) bool { return p >= first.Position.Commit && p < last.Position.Commit }
	if len(faults) != 1 || faults[0].Kind != "store" || faults[0].Projection != "c" || !committed(faults[0].Position) || faults[0].Err == nil {
		t.Errorf("faults = %+v, want one store fault at a position in [%d, %d)", faults, first.Position.Commit, last.Position.Commit)
	}
	c, ok := rep.find(func(c projection.StateChange) bool { return c.To == projection.StateRetrying })
	if !ok || !committed(c.Position) || c.Err == nil {
		t.Errorf("retrying change = %+v (found %v), want it at a position in [%d, %d) with the error", c, ok, first.Position.Commit, last.Position.Commit)
	}
}
