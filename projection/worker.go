// One projection's worker: its state, the Status it publishes, how it reports faults, and how
// each of its steps ends (outcome).

package projection

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// The kinds of Observer.Error.
const (
	kindSource     = "source"
	kindStore      = "store"
	kindConflict   = "conflict"
	kindLeadership = "leadership"
	kindHandler    = "handler"      // a retried handler error (reported through EventFailed)
	kindDropped    = "subscription" // a running subscription ended (reported through SubscriptionRestarted)
)

// worker runs one projection.
type worker[Tx any] struct {
	r    *Runner[Tx]
	p    Projection[Tx]
	name string     // what it is tracked, leased and waited for as: base, or its partition's name
	base string     // the projection's name
	part *partition // nil when the projection is not partitioned
	// siblings are the workers of every partition of the projection, the worker's own
	// included; nil when the projection is not partitioned.
	siblings []*worker[Tx]
	topics   []string
	opts     ProjectionOptions
	ctl      chan Command           // operator commands for a stopped projection; capacity 1
	resets   chan *resetRequest[Tx] // Runner.Reset's requests, taken while leading
	// parkReqs are Runner.ResumeStream's and Runner.SkipStream's requests, taken while leading.
	parkReqs chan *parkRequest

	// Used by the worker goroutine only.
	skip    *Failure          // an operator's Skip, applied when the failed event is delivered again
	reset   *resetRequest[Tx] // a reset taken by consume, for leading to run
	flushes bool              // the store's transactions are Flushers
	live    bool              // the subscription has caught up
	// parked is the set of the projection's parked streams, loaded at the start of each
	// session and kept as parks, resumes and skips commit.
	parked map[string]bool
	// halt is the event the projection is stopped on, reported again with the change that
	// leaves the stop; commanded is the operator's command being carried out, reported with the
	// next change.
	halt      *Failure
	commanded Command

	mu       sync.Mutex
	st       Status
	caughtUp bool
	phase    RunState // the state to show when no fault is being retried
	fault    string   // the kind of the fault being retried; "" when none
	pending  bool     // a command is queued on ctl
}

// partitionName is the name of the worker's partition; empty when the projection is not
// partitioned.
func (w *worker[Tx]) partitionName() string {
	if w.part == nil {
		return ""
	}
	return w.name
}

// checkpointEvery is how long the projection puts off a checkpoint-only commit, and its probes:
// the shorter of its own CheckpointEvery and the runner's.
func (w *worker[Tx]) checkpointEvery() time.Duration {
	if o := w.opts.CheckpointEvery; o > 0 && o < w.r.opts.CheckpointEvery {
		return o
	}
	return w.r.opts.CheckpointEvery
}

// setMark publishes s, committed or read, to the watermark that Wait watches: the worker's,
// and for a partition its projection's, once every partition's state is known here.
func (w *worker[Tx]) setMark(s tracking.State) {
	w.r.wm.Set(w.name, s)
	if w.part == nil {
		return
	}
	ws := w.siblings
	states, known := make([]tracking.State, len(ws)), make([]bool, len(ws))
	for i, pw := range ws {
		states[i], known[i], _ = w.r.wm.Load(context.Background(), pw.name)
	}
	if low, ok := lowest(states, known); ok {
		w.r.wm.Set(w.base, low)
	}
}

func (w *worker[Tx]) status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.CaughtUp = w.caughtUp && s.OldestPending.IsZero()
	if s.Failed != nil {
		f := *s.Failed
		s.Failed = &f
	}
	return s
}

// setState publishes the run state and reports a change to the Observer, with the event a
// stop is on and the operator's command that caused the change, if any.
func (w *worker[Tx]) setState(to RunState, err error) {
	w.mu.Lock()
	from := w.st.State
	w.st.State = to
	switch {
	case to != StateRetrying && to != StateStopped:
		w.st.Error = ""
	case err != nil:
		w.st.Error = err.Error()
	}
	c := StateChange{Projection: w.base, Partition: w.partitionName(), From: from, To: to, Err: err, Position: w.st.Position}
	if to == StateStopped && w.st.Failed != nil {
		f := *w.st.Failed
		c.Failed = &f
	}
	w.mu.Unlock()
	if from == to {
		return
	}
	switch {
	case to == StateStopped:
		w.halt = c.Failed
	case from == StateStopped:
		c.Failed, w.halt = w.halt, nil
	}
	c.Command, w.commanded = w.commanded, ""
	w.r.opts.Observer.StateChanged(c)
}

// faultReport returns the report of a fault of kind, at the projection's position.
func (w *worker[Tx]) faultReport(kind string, err error) Fault {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Fault{Projection: w.base, Partition: w.partitionName(), Kind: kind, Err: err, Position: w.st.Position}
}

// reportError reports a fault of kind through Observer.Error.
func (w *worker[Tx]) reportError(kind string, err error) {
	w.r.opts.Observer.Error(w.faultReport(kind, err))
}

// eventFailed reports a handler error on e through Observer.EventFailed.
func (w *worker[Tx]) eventFailed(e Event, err error, policy PolicyKind) {
	w.r.opts.Observer.EventFailed(FailedEvent{Projection: w.base, Partition: w.partitionName(), Event: e, Err: err, Policy: policy})
}

// enter sets the normal run state. While a fault is being retried the published state stays
// retrying, so that a repeated attempt is not reported as a change; recovered publishes it.
func (w *worker[Tx]) enter(s RunState) {
	w.mu.Lock()
	w.phase = s
	faulty := w.fault != ""
	w.mu.Unlock()
	if !faulty {
		w.setState(s, nil)
	}
}

// failure shows the projection retrying after a fault of kind. The Observer hears of the fault
// when it begins or changes kind, and of a permanent one at every attempt.
func (w *worker[Tx]) failure(kind string, err error) {
	w.mu.Lock()
	report := w.fault == "" || family(w.fault) != family(kind) || errors.Is(err, ErrPermanent)
	w.fault = kind
	w.mu.Unlock()
	if report {
		switch kind {
		case kindDropped:
			w.r.opts.Observer.SubscriptionRestarted(w.faultReport(kind, err))
		case kindHandler:
		default:
			w.reportError(kind, err)
		}
	}
	w.setState(StateRetrying, err)
}

// family groups the kinds of faults that one outage causes in turn (a dropped subscription,
// then failing subscribes), so that it is reported once.
func family(kind string) string {
	if kind == kindDropped {
		return kindSource
	}
	return kind
}

// recovered ends the fault being retried, if any, and publishes the normal state.
func (w *worker[Tx]) recovered() {
	w.mu.Lock()
	had := w.fault != ""
	w.fault = ""
	ph := w.phase
	w.mu.Unlock()
	if had {
		w.setState(ph, nil)
	}
}

func (w *worker[Tx]) faultIs(kind string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fault == kind
}

func (w *worker[Tx]) update(f func(st *Status)) {
	w.mu.Lock()
	f(&w.st)
	w.mu.Unlock()
}

// outcome says how a session, or a commit, ended.
type outcome int

const (
	outcomeOK        outcome = iota // committed; go on
	outcomeEnded                    // Run's context ended
	outcomeLost                     // the lease ended
	outcomeTransient                // retry after a backoff
	outcomeStopped                  // halt the projection until Resume or Skip
	outcomeReset                    // run the reset in w.reset, then start again
)

type result struct {
	out  outcome
	kind string // for outcomeTransient: the Observer.Error kind
	err  error
}

// failed classifies a store or source error of kind: the end of ctx or of the lease, or a
// transient failure to retry.
func (w *worker[Tx]) failed(ctx, lead context.Context, kind string, err error) result {
	switch {
	case ctx.Err() != nil:
		return result{out: outcomeEnded, err: err}
	case lead.Err() != nil || errors.Is(err, ErrLeadershipLost):
		return result{out: outcomeLost, err: err}
	}
	return result{out: outcomeTransient, kind: kind, err: err}
}
