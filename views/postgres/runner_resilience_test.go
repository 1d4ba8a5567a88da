package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// Two runners with their own pools and Electors: killing the leader's lock backend hands the
// projection to the standby, and the view ends exact.
func TestStandbyTakesOverWhenTheLeadersLockBackendIsKilled(t *testing.T) {
	t.Parallel()
	store, schema := newStore(t, postgres.Options{})
	createLedger(t, store.Pool())
	log := projectiontest.NewLog()
	n := 0
	for ; n < 2000; n++ {
		deposit(log, n)
	}
	var runners []*projection.Runner[pgx.Tx]
	var obs []*kinds
	for range 2 {
		k := &kinds{}
		s := postgres.New(pgtest.Pool(t, schema), postgres.Options{})
		t.Cleanup(func() { _ = s.Close() })
		r := projection.NewRunner(log, s, fast(k, elector(t, schema, 100*time.Millisecond)))
		if err := r.Add(ledger(nil), projection.ProjectionOptions{BatchSize: 100}); err != nil {
			t.Fatal(err)
		}
		runFor(t, r)
		runners, obs = append(runners, r), append(obs, k)
	}
	leaderOf := func() int {
		leader := -1
		poll.Until(t, 15*time.Second, "a runner leads", func() bool {
			for i, r := range runners {
				if st := r.Status()[0]; st.Leader && st.State != projection.StateStandby {
					if _, held := lockHolder(t, store.Pool(), schema, "ledger"); held {
						leader = i
						return true
					}
				}
			}
			return false
		})
		return leader
	}
	for round := range 3 {
		l := leaderOf()
		if st := runners[1-l].Status()[0]; st.Leader || st.State != projection.StateStandby {
			t.Errorf("round %d: the other runner is %s (leader %v), want a standby", round, st.State, st.Leader)
		}
		for end := n + 2000; n < end; n++ {
			deposit(log, n)
		}
		pid, ok := lockHolder(t, store.Pool(), schema, "ledger")
		if !ok {
			t.Fatalf("round %d: no lock holder", round)
		}
		if kill(t, store.Pool(), `pid = $1`, int64(pid)) != 1 {
			t.Fatalf("round %d: could not kill backend %d", round, pid)
		}
		waitStore(t, store, log.Events()[n-1].Position.Commit)
	}
	checkLedger(t, store.Pool(), n)
	if stopped := obs[0].entered(projection.StateStopped) + obs[1].entered(projection.StateStopped); stopped != 0 {
		t.Errorf("a runner stopped %d times", stopped)
	}
	t.Logf("conflicts with a late commit of a former leader: %d", obs[0].errors("conflict")+obs[1].errors("conflict"))
	lost := obs[0].errors("leadership") + obs[1].errors("leadership")
	if lost < 3 {
		t.Errorf("leadership errors reported = %d, want at least 3 (one per killed lock backend)", lost)
	}
}

// A leader whose lock backend dies while a batch is in its handlers does not commit that batch,
// even before its periodic lease check notices: the store verifies the lock in the transaction.
func TestLostLockIsFoundBeforeTheCommit(t *testing.T) {
	t.Parallel()
	store, schema := newStore(t, postgres.Options{})
	createLedger(t, store.Pool())
	log := projectiontest.NewLog()
	var evs []projection.Event
	for i := range 40 {
		evs = append(evs, deposit(log, i))
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	calls := map[string]int{}
	p := ledger(func(e projection.Event) {
		mu.Lock()
		calls[e.ID]++
		mu.Unlock()
		if e.ID == evs[25].ID {
			once.Do(func() { close(entered); <-release })
		}
	})
	k := &kinds{}
	r := projection.NewRunner(log, store, fast(k, elector(t, schema, time.Hour)))
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 20, BatchInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	runFor(t, r)
	<-entered
	pid, ok := lockHolder(t, store.Pool(), schema, "ledger")
	if !ok || kill(t, store.Pool(), `pid = $1`, int64(pid)) != 1 {
		t.Fatal("could not kill the lock backend")
	}
	// pg_terminate_backend only signals the backend: wait until it has gone, lock and all.
	poll.Until(t, 10*time.Second, "the killed lock backend no longer holds the lock", func() bool {
		now, held := lockHolder(t, store.Pool(), schema, "ledger")
		return !held || now != pid
	})
	close(release)
	waitStore(t, store, evs[39].Position.Commit)
	checkLedger(t, store.Pool(), 40)
	mu.Lock()
	redone, first := calls[evs[25].ID], calls[evs[0].ID]
	mu.Unlock()
	if redone != 2 || first != 1 {
		t.Errorf("event 25 handled %d times, event 0 %d times; want 2 (refused at commit, then redone) and 1", redone, first)
	}
	if k.errors("leadership") != 1 {
		t.Errorf("leadership errors = %d, want 1", k.errors("leadership"))
	}
}

// Killing the store's connections (and the waiters' LISTEN connection) mid-run is a transient
// fault: the runner retries, never blames an event, and the view ends exact.
func TestKilledStoreConnectionsAreRetriedNotBlamedOnEvents(t *testing.T) {
	t.Parallel()
	schema := pgtest.NewSchema(t)
	cfg := pgtest.Config(t, schema)
	app := "projector_kill_" + schema
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, postgres.Options{ListenRetry: 50 * time.Millisecond})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	createLedger(t, pool)
	admin := pgtest.Pool(t, schema)
	log := projectiontest.NewLog()
	const n = 3000
	for i := range n {
		deposit(log, i)
	}
	k := &kinds{}
	r := projection.NewRunner(log, store, fast(k, nil))
	// One round trip per event, so that kills land in handlers as well as in commits.
	p := projection.New[pgx.Tx]("ledger").On("Deposit", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		_, err := tx.Exec(ctx, `INSERT INTO ledger (id, amount) VALUES ($1::text::int, $1::text::bigint)`, string(e.Data))
		return err
	})
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	runFor(t, r)
	kills := 0
	last := log.Events()[n-1].Position.Commit
	for i := 0; i < 200; i++ {
		if st := r.Status()[0]; st.Position >= last || st.State == projection.StateStopped {
			break
		}
		time.Sleep(20 * time.Millisecond)
		kills += kill(t, admin, `application_name = $1`, app)
	}
	waitStore(t, store, last)
	checkLedger(t, pool, n)
	if kills == 0 || k.errors("store") == 0 {
		t.Errorf("killed %d backends, %d store errors reported; want both", kills, k.errors("store"))
	}
	if k.entered(projection.StateStopped) != 0 {
		t.Errorf("the projection stopped: a killed connection was blamed on an event")
	}
	t.Logf("killed %d backends; %d store faults reported, retrying entered %d times", kills, k.errors("store"), k.entered(projection.StateRetrying))
}

// Under the stop policy a failing queued statement is traced to its event by re-running the
// batch event by event; the events before it commit once and the status names it.
func TestStopPolicyCommitsTheEventsBeforeAFailingQueuedStatement(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE items (n int PRIMARY KEY CHECK (n <> 13))`); err != nil {
		t.Fatal(err)
	}
	log := projectiontest.NewLog()
	var evs []projection.Event
	for i := range 20 {
		evs = append(evs, log.Append(fmt.Sprint("s-", i%3), "Item", []byte(fmt.Sprint(i))))
	}
	p := projection.New[pgx.Tx]("items").On("Item", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		return postgres.Queue(ctx, tx, `INSERT INTO items VALUES ($1::text::int)`, string(e.Data))
	})
	r := projection.NewRunner(log, store, projection.Options{})
	if err := r.Add(p, projection.ProjectionOptions{BatchInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	runFor(t, r)
	poll.UntilNil(t, 10*time.Second, "the projection stops", func() error {
		if st := r.Status()[0]; st.State != projection.StateStopped {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	st := r.Status()[0]
	if st.State != projection.StateStopped || st.Failed == nil || st.Failed.EventID != evs[13].ID || st.Failed.Stream != evs[13].Stream ||
		st.Failed.Revision != evs[13].Revision || st.Failed.Position != evs[13].Position {
		t.Fatalf("status = %+v, want stopped on event 13 (%+v)", st, evs[13])
	}
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	tr, _, err := store.Load(ctx, "items")
	if err != nil {
		t.Fatal(err)
	}
	if n != 13 || tr != (tracking.State{Last: evs[12].Position}) {
		t.Errorf("items = %d, tracking %v; want 13, at event 12 %v", n, tr, evs[12].Position)
	}
}

// BenchmarkLedgerRunner measures a runner projecting 10,000 events into PostgreSQL, without a
// leader and with an Elector (which adds a lock check to every batch).
func BenchmarkLedgerRunner(b *testing.B) {
	const n = 10000
	for _, withLeader := range []bool{false, true} {
		name := "no-leader"
		if withLeader {
			name = "elector"
		}
		b.Run(name, func(b *testing.B) {
			schema := pgtest.NewSchema(b)
			store := postgres.New(pgtest.Pool(b, schema), postgres.Options{})
			b.Cleanup(func() { _ = store.Close() })
			ctx := context.Background()
			if err := store.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := store.Pool().Exec(ctx, `CREATE TABLE ledger (id int NOT NULL, amount bigint NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			log := projectiontest.NewLog()
			for i := range n {
				deposit(log, i)
			}
			last := log.Events()[n-1].Position.Commit
			var leader projection.Leader
			if withLeader {
				leader = postgres.NewElector(pgtest.Config(b, schema).ConnConfig, postgres.ElectorOptions{RetryInterval: 10 * time.Millisecond})
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if _, err := store.Pool().Exec(ctx, `TRUNCATE ledger`); err != nil {
					b.Fatal(err)
				}
				if err := store.Reset(ctx, "ledger"); err != nil {
					b.Fatal(err)
				}
				r := projection.NewRunner(log, store, projection.Options{Leader: leader})
				if err := r.Add(ledger(nil), projection.ProjectionOptions{}); err != nil {
					b.Fatal(err)
				}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				b.StartTimer()
				go func() { done <- r.Run(rctx) }()
				wctx, wcancel := context.WithTimeout(ctx, time.Minute)
				_, err := r.Wait(wctx, "ledger", last)
				wcancel()
				b.StopTimer()
				cancel()
				<-done
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
