package postgres_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// kinds records the Observer.Error kinds and run states a runner reports.
type kinds struct {
	projection.NopObserver
	mu     sync.Mutex
	errs   map[string]int
	states map[projection.RunState]int
}

func (k *kinds) Error(f projection.Fault) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.errs == nil {
		k.errs = map[string]int{}
	}
	k.errs[f.Kind]++
}

func (k *kinds) StateChanged(c projection.StateChange) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.states == nil {
		k.states = map[projection.RunState]int{}
	}
	k.states[c.To]++
}

func (k *kinds) errors(kind string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.errs[kind]
}

func (k *kinds) entered(s projection.RunState) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.states[s]
}

// ledger is a projection that appends one row per event to a table without a key, so a
// doubled event shows as a duplicate id.
func ledger(block func(e projection.Event)) *projection.Dispatch[pgx.Tx] {
	return projection.New[pgx.Tx]("ledger").On("Deposit", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		if block != nil {
			block(e)
		}
		return postgres.Queue(ctx, tx, `INSERT INTO ledger (id, amount) VALUES ($1::text::int, $1::text::bigint)`, string(e.Data))
	})
}

func createLedger(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `CREATE TABLE ledger (id int NOT NULL, amount bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

// checkLedger asserts that the ledger holds exactly the deposits 0..n-1, once each.
func checkLedger(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	var rows, distinct, sum int64
	err := pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT id), coalesce(sum(amount), 0) FROM ledger`).Scan(&rows, &distinct, &sum)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(n) * int64(n-1) / 2; rows != int64(n) || distinct != int64(n) || sum != want {
		t.Errorf("ledger: %d rows, %d distinct, sum %d; want %d, %d, %d (nothing lost, nothing doubled)", rows, distinct, sum, n, n, want)
	}
}

func deposit(log *projectiontest.Log, i int) projection.Event {
	return log.Append(fmt.Sprint("account-", i%7), "Deposit", []byte(strconv.Itoa(i)))
}

// runFor runs r until the test ends.
func runFor(t *testing.T, r *projection.Runner[pgx.Tx]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20s of cancel")
		}
	})
}

func waitStore(t *testing.T, store *postgres.Store, commit uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, err := store.Wait(ctx, "ledger", commit); err != nil {
		t.Fatalf("Wait(%d): %v (at %v)", commit, err, s)
	}
}

// lockHolder returns the backend pid that holds the leadership lock of projectionName in schema.
func lockHolder(t *testing.T, pool *pgxpool.Pool, schema, projectionName string) (uint32, bool) {
	t.Helper()
	u := uint64(postgres.LockKey(schema, projectionName))
	var pid int64
	err := pool.QueryRow(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1`, int64(u>>32), int64(u&0xffffffff)).Scan(&pid)
	if err == pgx.ErrNoRows {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return uint32(pid), true
}

func kill(t *testing.T, pool *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE `+where, args...).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func elector(t *testing.T, schema string, check time.Duration) *postgres.Elector {
	return postgres.NewElector(pgtest.Config(t, schema).ConnConfig, postgres.ElectorOptions{RetryInterval: 50 * time.Millisecond, CheckInterval: check, Timeout: 5 * time.Second})
}

func fast(obs projection.Observer, leader projection.Leader) projection.Options {
	return projection.Options{Observer: obs, Leader: leader, MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, CheckpointEvery: 20 * time.Millisecond}
}
