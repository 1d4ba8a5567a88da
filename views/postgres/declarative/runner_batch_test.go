// Batch SQL run by the Runner on the PostgreSQL store: a failing statement is bisected to its
// event under each error policy, with every other event committed exactly once.

package declarative_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/declarative"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// ledgerSpec books each deposit into a ledger without a key, so an event committed twice shows
// as a duplicate. A negative amount violates a check; an account other than those the batch
// opens must exist already (the account "late" is opened by the test); while kill_switch is
// armed, the batch kills its own connection.
var ledgerSpec = declarative.Spec{
	Name: "ledger",
	Schema: `CREATE TABLE IF NOT EXISTS accounts (id text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ledger (event_id text NOT NULL, account text NOT NULL REFERENCES accounts, amount int NOT NULL CHECK (amount >= 0));
CREATE TABLE IF NOT EXISTS kill_switch (armed bool NOT NULL);`,
	Topics: []string{"Deposited"},
	Batch: `INSERT INTO accounts SELECT DISTINCT data->>'account' FROM events WHERE data->>'account' <> 'late' ON CONFLICT DO NOTHING;
SELECT pg_terminate_backend(pg_backend_pid()) FROM kill_switch WHERE armed;
INSERT INTO ledger SELECT event_id, data->>'account', (data->>'amount')::int FROM events ORDER BY seq;`,
}

// failures records the events the runner reports failed, and the kinds of its errors.
type failures struct {
	projection.NopObserver
	mu     sync.Mutex
	failed []string // "<policy> <event id>"
	kinds  []string
}

func (f *failures) EventFailed(e projection.FailedEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = append(f.failed, string(e.Policy)+" "+e.Event.ID)
}

func (f *failures) Error(fault projection.Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kinds = append(f.kinds, fault.Kind)
}

func (f *failures) snapshot() (failed, kinds []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.failed...), append([]string(nil), f.kinds...)
}

type ledgerRun struct {
	pool   *pgxpool.Pool
	runner *projection.Runner[pgx.Tx]
	evs    []projection.Event
	obs    *failures
}

// runLedger runs the ledger projection over n deposits of 1 into accounts a0..a9, in one batch;
// poison gives the data of the events it names.
func runLedger(t *testing.T, n int, poison map[int]string, pol projection.ErrorPolicy, arm bool) *ledgerRun {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t, "projector_decl_"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, postgres.Options{})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := declarative.New(ledgerSpec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO kill_switch VALUES ($1)", arm); err != nil {
		t.Fatal(err)
	}
	log := projectiontest.NewLog()
	run := &ledgerRun{pool: pool, obs: &failures{}}
	for i := range n {
		data, bad := poison[i]
		if !bad {
			data = fmt.Sprintf(`{"account":"a%d","amount":1}`, i%10)
		}
		run.evs = append(run.evs, log.Append(fmt.Sprint("s", i%7), "Deposited", []byte(data)))
	}
	run.runner = projection.NewRunner(log, store, projection.Options{Observer: run.obs, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err := run.runner.Add(p.Runnable(), projection.ProjectionOptions{BatchSize: 1000, BatchInterval: time.Hour, OnError: pol}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run.runner.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return run
}

// booked fails t unless the ledger holds each of want's events exactly once, and nothing else.
func (r *ledgerRun) booked(t *testing.T, want []projection.Event) {
	t.Helper()
	var rows, distinct int
	var ids string
	if err := r.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT event_id), coalesce(string_agg(event_id, ',' ORDER BY event_id COLLATE "C"), '') FROM ledger`).Scan(&rows, &distinct, &ids); err != nil {
		t.Fatal(err)
	}
	wantIDs := make([]string, len(want))
	for i, e := range want {
		wantIDs[i] = e.ID
	}
	if rows != len(want) || distinct != len(want) || ids != sortedJoin(wantIDs) {
		t.Errorf("ledger holds %d rows of %d events, want each of %d events once", rows, distinct, len(want))
	}
}

func (r *ledgerRun) waitFor(t *testing.T, e projection.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.runner.Wait(ctx, "ledger", e.Position.Commit); err != nil {
		t.Fatalf("wait for %v: %v; status %+v", e.Position, err, r.runner.Status())
	}
}

func (r *ledgerRun) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s; status %+v", what, r.runner.Status())
		}
	}
}

func without(evs []projection.Event, drop ...int) []projection.Event {
	var out []projection.Event
	for i, e := range evs {
		if !containsInt(drop, i) {
			out = append(out, e)
		}
	}
	return out
}

func TestFailingBatchSQLStopsOnItsEvent(t *testing.T) {
	r := runLedger(t, 300, map[int]string{123: `{"account":"a1","amount":-1}`}, projection.ErrorPolicy{}, false)
	r.eventually(t, "the projection stops", func() bool { return r.runner.Status()[0].State == projection.StateStopped })
	st := r.runner.Status()[0]
	if st.Failed == nil || st.Failed.EventID != r.evs[123].ID || !strings.Contains(st.Failed.Error, "ledger_amount_check") || !strings.Contains(st.Failed.Error, "statement 3 (line 3 of the batch SQL)") {
		t.Fatalf("status = %+v, want stopped on event 123 by statement 3's check", st)
	}
	if st.Tracking.Last != r.evs[122].Position {
		t.Errorf("tracking at %v, want %v, the event before the culprit", st.Tracking.Last, r.evs[122].Position)
	}
	r.booked(t, r.evs[:123])
	if failed, _ := r.obs.snapshot(); len(failed) != 1 || failed[0] != "stop "+r.evs[123].ID {
		t.Errorf("failures = %v, want one stop on event 123", failed)
	}
}

func TestFailingBatchSQLIsRetriedOnItsEventUntilItSucceeds(t *testing.T) {
	pol := projection.ErrorPolicy{Policy: projection.PolicyRetry, Retries: 1000, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	r := runLedger(t, 300, map[int]string{200: `{"account":"late","amount":1}`}, pol, false)
	r.eventually(t, "event 200 is retried", func() bool {
		failed, _ := r.obs.snapshot()
		return len(failed) > 0
	})
	r.booked(t, r.evs[:200]) // the events before it are committed, once, while it is retried
	if _, err := r.pool.Exec(context.Background(), "INSERT INTO accounts VALUES ('late')"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, r.evs[299])
	r.booked(t, r.evs)
	failed, _ := r.obs.snapshot()
	if count := len(failed); count == 0 || strings.Count(strings.Join(failed, "\n"), "retry "+r.evs[200].ID) != count {
		t.Errorf("failures = %v, want retries of event 200 only", failed)
	}
}

func TestFailingBatchSQLSkipsItsEvents(t *testing.T) {
	poison := map[int]string{0: `{"account":"a1","amount":-1}`, 150: `{"account":"a1","amount":-2}`, 151: `not JSON`, 299: `{"account":"a1","amount":-3}`}
	r := runLedger(t, 300, poison, projection.ErrorPolicy{Policy: projection.PolicySkip}, false)
	r.waitFor(t, r.evs[299])
	r.booked(t, without(r.evs, 0, 150, 151, 299))
	dl, err := postgres.ListDeadLetters(context.Background(), r.pool, "ledger", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 4 || dl[0].Event.ID != r.evs[0].ID || dl[1].Event.ID != r.evs[150].ID || dl[2].Event.ID != r.evs[151].ID || dl[3].Event.ID != r.evs[299].ID {
		t.Fatalf("dead letters = %+v, want events 0, 150, 151 and 299", dl)
	}
	if !strings.Contains(dl[1].Error, "ledger_amount_check") || !strings.Contains(dl[2].Error, "data is not JSON") || !strings.Contains(dl[2].Error, r.evs[151].ID) {
		t.Errorf("dead letter errors = %q, %q; want the check, and data that is not JSON naming event 151", dl[1].Error, dl[2].Error)
	}
}

// A connection killed in the middle of the batch SQL is a store failure, not a poison event:
// the batch is retried whole, even under the stop policy, and committed once.
func TestAConnectionKilledByBatchSQLIsRetriedNotBlamedOnAnEvent(t *testing.T) {
	r := runLedger(t, 300, nil, projection.ErrorPolicy{}, true)
	r.eventually(t, "the store failure is reported", func() bool {
		_, kinds := r.obs.snapshot()
		return len(kinds) > 0
	})
	if _, err := r.pool.Exec(context.Background(), "UPDATE kill_switch SET armed = false"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, r.evs[299])
	r.booked(t, r.evs)
	failed, kinds := r.obs.snapshot()
	if len(failed) != 0 || kinds[0] != "store" {
		t.Errorf("failures = %v, error kinds = %v; want no failed event, a store error", failed, kinds)
	}
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sortedJoin(xs []string) string {
	s := append([]string(nil), xs...)
	sort.Strings(s)
	return strings.Join(s, ",")
}
