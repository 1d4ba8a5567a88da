// The optional report of every store transaction a runner tries, committed or not, for
// tracing: Observer.BatchCommitted reports only what committed, and Observer.Error only the
// first attempt of a fault, so neither can time a transaction that rolled back; and a report
// made before the commit lets a tracer know the batch before a waiter in another connection
// (LISTEN/NOTIFY) sees it committed.

package projection

import (
	"errors"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// TransactionObserver is implemented by an Observer that also wants a report of every store
// transaction the runner tries. For each, the runner calls TransactionStarted before it runs
// the handlers and TransactionEnded once it committed or rolled back, from the projection's
// goroutine: one transaction at a time per projection. Both must return quickly.
type TransactionObserver interface {
	TransactionStarted(t Transaction)
	TransactionEnded(t EndedTransaction)
}

// Transaction is one store transaction of a projection, as TransactionStarted reports it.
type Transaction struct {
	Projection string
	// Events is the number of events the transaction applies (0 for one that only advances
	// tracking past a checkpoint); a skipped, dead-lettered event is counted.
	Events int
	// First and Last are the positions of its first and last event (zero without events).
	First, Last Position
	// State is the tracking state it commits if it succeeds.
	State tracking.State
	// Start is when it began.
	Start time.Time
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
	Transaction
	// Duration is how long it took, until the commit or the rollback.
	Duration time.Duration
	Outcome  Outcome
	// Err is why it did not commit; nil when it did.
	Err error
}

// transactionStarted reports t, starting now, to the Observer when it is a
// TransactionObserver, and returns the report for transactionEnded (nil when there is none).
func (w *worker[Tx]) transactionStarted(t transaction) *Transaction {
	to, ok := w.r.opts.Observer.(TransactionObserver)
	if !ok {
		return nil
	}
	s := &Transaction{Projection: w.name, Events: len(t.batch), State: t.next, Start: time.Now()}
	if n := len(t.batch); n > 0 {
		s.First, s.Last = t.batch[0].Position, t.batch[n-1].Position
	}
	to.TransactionStarted(*s)
	return s
}

// transactionEnded reports the end of the transaction s (nil: not reported) with the result
// err; leadEnded tells that the lease or the drain time had ended by then.
func (w *worker[Tx]) transactionEnded(s *Transaction, err error, leadEnded bool) {
	if s == nil {
		return
	}
	e := EndedTransaction{Transaction: *s, Duration: time.Since(s.Start), Outcome: OutcomeCommitted, Err: err}
	if err != nil {
		e.Outcome = OutcomeFailed
		var he *handlerError
		if errors.As(err, &he) || errors.Is(err, tracking.ErrConflict) || errors.Is(err, ErrLeadershipLost) || leadEnded {
			e.Outcome = OutcomeRolledBack
		}
	}
	w.r.opts.Observer.(TransactionObserver).TransactionEnded(e)
}
