package projection_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// transactions is a TransactionObserver that keeps the transactions it is told of, and the
// ends not paired with the start before them.
type transactions struct {
	projection.NopObserver
	mu       sync.Mutex
	open     *projection.Transaction
	ended    []projection.EndedTransaction
	unpaired int
}

func (r *transactions) TransactionStarted(t projection.Transaction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open != nil {
		r.unpaired++
	}
	r.open = &t
}

func (r *transactions) TransactionEnded(t projection.EndedTransaction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil || *r.open != t.Transaction {
		r.unpaired++
	}
	r.open = nil
	r.ended = append(r.ended, t)
}

func (r *transactions) get() []projection.EndedTransaction {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]projection.EndedTransaction(nil), r.ended...)
}

// A TransactionObserver hears of every store transaction: the failed commits of a store fault,
// the rollback of a handler failure with its error, and the commits, which together apply
// every event once, each with its first and last position and its timing.
func TestRunnerReportsEveryTransaction(t *testing.T) {
	log := projectiontest.NewLog()
	events := appendEvents(log, 12)
	bad := events[7].Position.Commit
	store := &flakyStore{Store: memory.New(), fails: 2}
	rec := &transactions{}
	r := projection.NewRunner(log, store, fastOptions(rec))
	opts := projection.ProjectionOptions{BatchSize: 5, OnError: projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 2, Backoff: time.Millisecond}}
	if err := r.Add(failOn("c", map[uint64]int{bad: 1}), opts); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	wait(t, r, "c", events[len(events)-1].Position.Commit)

	applied := map[uint64]int{}
	var failed, rolledBack int
	for _, tx := range rec.get() {
		if tx.Projection != "c" || tx.Start.IsZero() || tx.Duration < 0 {
			t.Errorf("transaction %+v", tx)
		}
		if tx.Events > 0 && (tx.First != eventAt(events, tx.First).Position || tx.Last != eventAt(events, tx.Last).Position || tx.First.Commit > tx.Last.Commit) {
			t.Errorf("transaction from %v to %v: not events of the log", tx.First, tx.Last)
		}
		switch tx.Outcome {
		case projection.OutcomeFailed:
			failed++
			if tx.Err == nil || !strings.Contains(tx.Err.Error(), "connection reset") {
				t.Errorf("failed transaction's error %v", tx.Err)
			}
		case projection.OutcomeRolledBack:
			rolledBack++
			if tx.Err == nil || !strings.Contains(tx.Err.Error(), "bad event") || tx.First.Commit > bad || tx.Last.Commit < bad {
				t.Errorf("rolled-back transaction %v..%v: %v", tx.First, tx.Last, tx.Err)
			}
		case projection.OutcomeCommitted:
			if tx.Err != nil {
				t.Errorf("committed transaction with error %v", tx.Err)
			}
			n := 0
			for _, e := range events {
				if tx.Events > 0 && e.Position.Commit >= tx.First.Commit && e.Position.Commit <= tx.Last.Commit {
					applied[e.Position.Commit]++
					n++
				}
			}
			if n != tx.Events || (tx.Events > 0 && tx.State.Last != tx.Last) {
				t.Errorf("committed %d events from %v to %v at %v; the log has %d there", tx.Events, tx.First, tx.Last, tx.State, n)
			}
		default:
			t.Errorf("outcome %q", tx.Outcome)
		}
	}
	rec.mu.Lock()
	if rec.unpaired != 0 {
		t.Errorf("%d transactions started and ended out of pairs", rec.unpaired)
	}
	rec.mu.Unlock()
	if failed != 2 || rolledBack == 0 {
		t.Errorf("%d failed and %d rolled-back transactions, want 2 and at least 1", failed, rolledBack)
	}
	for _, e := range events {
		if applied[e.Position.Commit] != 1 {
			t.Errorf("event at %d committed %d times", e.Position.Commit, applied[e.Position.Commit])
		}
	}
}

// eventAt returns the event of events at p's commit position (zero when none is).
func eventAt(events []projection.Event, p projection.Position) projection.Event {
	for _, e := range events {
		if e.Position.Commit == p.Commit {
			return e
		}
	}
	return projection.Event{}
}
