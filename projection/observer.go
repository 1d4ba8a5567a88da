// What a Runner tells: the Observer of its reports, and the Status of each projection.

package projection

import (
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Observer receives a Runner's reports as they happen; metrics and logs implement it.
// Methods are called from the runner's goroutines, must be safe for concurrent use, and must
// return quickly. Embed NopObserver to implement only some of them.
type Observer interface {
	// BatchCommitted reports a committed batch of events events (0 for a batch that only
	// advanced past a checkpoint) that took d from first handler call to commit.
	BatchCommitted(projection string, events int, d time.Duration, state tracking.State)
	// EventFailed reports a handler error on e; policy tells what the runner does about it
	// ("stop", "retry", "skip").
	EventFailed(projection string, e Event, err error, policy string)
	// EventDeadLettered reports that e was written to the dead-letter table and skipped.
	EventDeadLettered(projection string, e Event, err error)
	// Error reports a failure that is not an event's fault, by kind: "source" (KurrentDB),
	// "store" (view store), "conflict" (tracking moved under us: retried under leadership, else
	// the projection stops), "leadership" (the lease could not be acquired, or was lost).
	// Transient failures are retried with backoff and reported once per fault: when it begins,
	// and again only if the kind of failure changes before it ends; permanent ones (wrapping
	// ErrPermanent) are reported at every attempt.
	Error(projection, kind string, err error)
	// SubscriptionRestarted reports that a running subscription ended with err and is being
	// restarted (once per drop).
	SubscriptionRestarted(projection string, err error)
	// StateChanged reports a change of the projection's run state, with the error that caused
	// it, if any. It is called once per change, never for a repeated attempt in the same state.
	StateChanged(projection string, from, to RunState, err error)
}

// NopObserver implements Observer by doing nothing.
type NopObserver struct{}

// BatchCommitted implements Observer.
func (NopObserver) BatchCommitted(string, int, time.Duration, tracking.State) {}

// EventFailed implements Observer.
func (NopObserver) EventFailed(string, Event, error, string) {}

// EventDeadLettered implements Observer.
func (NopObserver) EventDeadLettered(string, Event, error) {}

// Error implements Observer.
func (NopObserver) Error(string, string, error) {}

// SubscriptionRestarted implements Observer.
func (NopObserver) SubscriptionRestarted(string, error) {}

// StateChanged implements Observer.
func (NopObserver) StateChanged(string, RunState, RunState, error) {}

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
