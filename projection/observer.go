// What a Runner tells: the Observer of its reports, and the Status of each projection.

package projection

import (
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Observer receives a Runner's reports as they happen; metrics and logs implement it. Each
// report is one value that carries what a consumer needs (the projection, its position, the
// cause), so that no consumer has to keep state of its own to make sense of it.
// Methods are called from the runner's goroutines, must be safe for concurrent use, and must
// return quickly. Embed NopObserver to implement only some of them.
type Observer interface {
	// BatchCommitted reports a committed batch.
	BatchCommitted(b CommittedBatch)
	// EventFailed reports a handler error on an event, and what the runner does about it
	// (f.Policy: stop, retry or skip).
	EventFailed(f FailedEvent)
	// EventDeadLettered reports that f.Event was written to the dead-letter table and skipped
	// (f.Policy is skip).
	EventDeadLettered(f FailedEvent)
	// Error reports a failure that is not an event's fault, by f.Kind: "source" (KurrentDB),
	// "store" (view store), "conflict" (tracking moved under us: retried under leadership, else
	// the projection stops), "leadership" (the lease could not be acquired, or was lost).
	// Transient failures are retried with backoff and reported once per fault: when it begins,
	// and again only if the kind of failure changes before it ends; permanent ones (wrapping
	// ErrPermanent) are reported at every attempt.
	Error(f Fault)
	// SubscriptionRestarted reports that a running subscription ended with f.Err and is being
	// restarted (once per drop); f.Kind is "subscription".
	SubscriptionRestarted(f Fault)
	// StateChanged reports a change of the projection's run state, with what caused it. It is
	// called once per change, never for a repeated attempt in the same state.
	StateChanged(c StateChange)
}

// CommittedBatch is a committed store transaction of a projection, as BatchCommitted reports it.
type CommittedBatch struct {
	Projection string
	// Partition is the name of the partition that committed (PartitionName); empty when the
	// projection is not partitioned. State is that partition's.
	Partition string
	// Events is the number of events the batch applied: 0 for a batch that only advanced past
	// a checkpoint (a skipped event is not counted).
	Events int
	// Duration is the time from the batch's first handler call to its commit.
	Duration time.Duration
	// State is the tracking state committed; State.Reached() is the projection's new position.
	State tracking.State
}

// FailedEvent is a handler error on one event, as EventFailed and EventDeadLettered report it.
type FailedEvent struct {
	Projection string
	// Partition is the name of the event's partition; empty when not partitioned.
	Partition string
	Event     Event
	Err       error
	// Policy is what the runner does about it: stop, retry, skip (also for an operator's
	// Skip), or park.
	Policy PolicyKind
}

// Fault is a failure that is not an event's fault, as Error and SubscriptionRestarted report it.
type Fault struct {
	Projection string
	// Partition is the name of the partition that failed; empty when not partitioned.
	Partition string
	// Kind is what failed: "source", "store", "conflict" or "leadership" (see Observer.Error),
	// or "subscription" for SubscriptionRestarted.
	Kind string
	Err  error
	// Position is the projection's position (Status.Position) when the fault was reported.
	Position uint64
}

// StateChange is a change of a projection's run state, as StateChanged reports it.
type StateChange struct {
	Projection string
	// Partition is the name of the partition whose state changed; empty when the projection
	// is not partitioned.
	Partition string
	From, To  RunState
	// Err is the error that caused the change, if any: the fault being retried, the cause of a
	// stop, or why the lease was lost (a change to standby).
	Err error
	// Failed is the event a projection stopped on a poison event is halted on: set on the
	// change to StateStopped that the event caused, and on the change that leaves that stop.
	Failed *Failure
	// Command is the operator's command that caused the change, if one did: the change out of
	// StateStopped after Resume or Skip, or the restart after a Reset. Empty otherwise.
	Command Command
	// Position is the projection's position (Status.Position) at the change.
	Position uint64
}

// Command is an operator's command to a projection.
type Command string

// The operator's commands.
const (
	CommandResume Command = "resume" // Runner.Resume
	CommandSkip   Command = "skip"   // Runner.Skip
	CommandReset  Command = "reset"  // Runner.Reset
)

// NopObserver implements Observer by doing nothing.
type NopObserver struct{}

// BatchCommitted implements Observer.
func (NopObserver) BatchCommitted(CommittedBatch) {}

// EventFailed implements Observer.
func (NopObserver) EventFailed(FailedEvent) {}

// EventDeadLettered implements Observer.
func (NopObserver) EventDeadLettered(FailedEvent) {}

// Error implements Observer.
func (NopObserver) Error(Fault) {}

// SubscriptionRestarted implements Observer.
func (NopObserver) SubscriptionRestarted(Fault) {}

// StateChanged implements Observer.
func (NopObserver) StateChanged(StateChange) {}

// RunState is where a projection's runner is in its life.
type RunState string

// The run states of a projection.
const (
	StateStarting   RunState = "starting"    // connecting, loading tracking
	StateStandby    RunState = "standby"     // another instance leads this projection
	StateCatchingUp RunState = "catching_up" // leading, reading history
	StateLive       RunState = "live"        // leading, caught up, following new events
	StateRetrying   RunState = "retrying"    // a fault; backing off between retries until it clears
	StateStopped    RunState = "stopped"     // halted on a poison event or a conflict; needs Resume or Skip
	StateDone       RunState = "done"        // the runner has ended
)

// Status is a point-in-time view of one projection, for status APIs and scrape-time metrics.
type Status struct {
	Name     string         `json:"name"`
	State    RunState       `json:"state"`
	Leader   bool           `json:"leader"`
	Tracking tracking.State `json:"tracking"`
	// Position is the highest commit position processed (tracking.State.Reached).
	Position uint64 `json:"position"`
	// CaughtUp is true once the subscription has caught up and everything delivered is committed.
	CaughtUp bool `json:"caught_up"`
	// OldestPending is the creation time of the oldest event delivered but not yet committed;
	// zero when none is pending.
	OldestPending time.Time `json:"oldest_pending,omitempty"`
	// LastProgress is when the projection last committed.
	LastProgress time.Time `json:"last_progress,omitempty"`
	// Failed describes the event a stopped projection is halted on.
	Failed *Failure `json:"failed,omitempty"`
	// Error is the error that made the projection retrying or stopped; empty otherwise.
	Error string `json:"error,omitempty"`
	// Partitions are the entries of a partitioned projection's partitions, in partition order
	// (each named by PartitionName); empty when the projection is not partitioned.
	Partitions []Status `json:"partitions,omitempty"`
	// LeaderMember is the id of the replica (scale-out group member) that leads the
	// projection, when the daemon knows it; empty otherwise.
	LeaderMember string `json:"leader_member,omitempty"`
	// ParkedStreams is the number of streams the projection has parked (error policy park), as
	// the replica that leads it knows them; 0 on a standby.
	ParkedStreams int `json:"parked_streams"`
}

// Failure describes a poison event and the error it caused.
type Failure struct {
	Position Position `json:"position"`
	EventID  string   `json:"event_id"`
	Type     string   `json:"type"`
	Stream   string   `json:"stream"`
	Revision uint64   `json:"revision"`
	Error    string   `json:"error"`
}
