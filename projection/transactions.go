// The optional report of every store transaction a runner tries, committed or not, for
// tracing: Observer.BatchCommitted reports only what committed, and Observer.Error only the
// first attempt of a fault, so neither can time a transaction that rolled back.

package projection

import (
	"errors"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// TransactionObserver is implemented by an Observer that also wants a report of every store
// transaction the runner tries: the runner calls TransactionEnded once per transaction, after
// it committed or rolled back, from the projection's goroutine. It must return quickly.
type TransactionObserver interface {
	TransactionEnded(t EndedTransaction)
}

// Outcome is how a store transaction ended.
type Outcome string

// The outcomes of a store transaction.
const (
	// OutcomeCommitted: the transaction committed.
	OutcomeCommitted Outcome = "committed"
	// OutcomeRolledBack: the runner rolled the transaction back: a handler failed (the error
	// policy then decides about the event), the tracking row moved under it (a conflict), or
	// the lease or the drain time ended.
	OutcomeRolledBack Outcome = "rolled_back"
	// OutcomeFailed: the store failed (a connection, the commit itself); the runner retries.
	OutcomeFailed Outcome = "failed"
)

// EndedTransaction is one store transaction of a projection, as TransactionEnded reports it.
type EndedTransaction struct {
	Projection string
	// Events is the number of events the transaction applied (0 for one that only advanced
	// tracking past a checkpoint); a skipped, dead-lettered event is counted.
	Events int
	// First and Last are the positions of its first and last event (zero without events).
	First, Last Position
	// State is the tracking state it commits (or would have committed).
	State tracking.State
	// Start is when it began; Duration how long it took, until the commit or the rollback.
	Start    time.Time
	Duration time.Duration
	Outcome  Outcome
	// Err is why it did not commit; nil when it did.
	Err error
}

// transactionEnded reports t, tried from start with the result err (leadEnded: the lease or
// the drain time had ended by then), to the Observer when it is a TransactionObserver.
func (w *worker[Tx]) transactionEnded(t transaction, start time.Time, err error, leadEnded bool) {
	to, ok := w.r.opts.Observer.(TransactionObserver)
	if !ok {
		return
	}
	e := EndedTransaction{Projection: w.name, Events: len(t.batch), State: t.next, Start: start,
		Duration: time.Since(start), Outcome: OutcomeCommitted, Err: err}
	if n := len(t.batch); n > 0 {
		e.First, e.Last = t.batch[0].Position, t.batch[n-1].Position
	}
	if err != nil {
		e.Outcome = OutcomeFailed
		var he *handlerError
		if errors.As(err, &he) || errors.Is(err, tracking.ErrConflict) || errors.Is(err, ErrLeadershipLost) || leadEnded {
			e.Outcome = OutcomeRolledBack
		}
	}
	to.TransactionEnded(e)
}
