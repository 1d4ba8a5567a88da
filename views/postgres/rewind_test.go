package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// newViewStore returns a migrated store on a new schema, with the Options opts gives for the
// schema and a view table "v" holding one row, and the schema.
func newViewStore(t *testing.T, opts func(schema string) postgres.Options) (*postgres.Store, string) {
	t.Helper()
	schema := pgtest.NewSchema(t)
	store := postgres.New(pgtest.Pool(t, schema), opts(schema))
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pool().Exec(context.Background(), `CREATE TABLE v (id int PRIMARY KEY); INSERT INTO v VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	return store, schema
}

func viewRows(t *testing.T, store *postgres.Store) int {
	t.Helper()
	var n int
	if err := store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM v`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func truncateView(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `TRUNCATE v`)
	return err
}

// advance moves projection p's tracking from nothing to commit c.
func advance(t *testing.T, store *postgres.Store, p string, c uint64) tracking.State {
	t.Helper()
	st := tracking.State{Last: pos(c)}
	if err := store.Apply(context.Background(), p, tracking.State{}, st, noop); err != nil {
		t.Fatal(err)
	}
	return st
}

// An offline Rewind takes the projection's leadership lock with the Elector's key in the
// store's Namespace: it is refused while an Elector of that namespace leads the projection
// (nothing changes), not by one of another namespace, and an Elector cannot start leading
// while the rewind's transaction is open.
func TestRewindHonoursTheElectorsNamespace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, schema := newViewStore(t, func(schema string) postgres.Options { return postgres.Options{Namespace: "ns_" + schema} })
	before := advance(t, store, "p", 42)
	elector := func(namespace string) *postgres.Elector {
		return postgres.NewElector(pgtest.Config(t, schema).ConnConfig, postgres.ElectorOptions{Namespace: namespace, RetryInterval: 20 * time.Millisecond})
	}
	same, other := elector("ns_"+schema), elector("other_"+schema)

	lease, err := same.AcquireLease(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	from, err := store.Rewind(ctx, "p", tracking.State{}, truncateView)
	if !errors.Is(err, postgres.ErrLeaderActive) || !strings.Contains(err.Error(), `"ns_`+schema+`"`) {
		t.Fatalf("Rewind while an Elector of the namespace leads = %v, want ErrLeaderActive naming the namespace", err)
	}
	if st, ok, _ := store.Load(ctx, "p"); !ok || st != before || viewRows(t, store) != 1 {
		t.Errorf("the refused rewind changed something: tracking %v (%v), %d view rows", st, ok, viewRows(t, store))
	}
	if from != (tracking.State{}) {
		t.Errorf("refused Rewind returned %v, want the zero state", from)
	}
	releaseLease(t, lease)

	otherLease, err := other.AcquireLease(ctx, "p") // another installation's leader of "p"
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLease(t, otherLease)
	from, err = store.Rewind(ctx, "p", tracking.State{}, func(ctx context.Context, tx pgx.Tx) error {
		// While the rewind holds the lock, no Elector of its namespace can lead "p".
		actx, acancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer acancel()
		if l, err := same.AcquireLease(actx, "p"); !errors.Is(err, context.DeadlineExceeded) {
			if l != nil {
				releaseLease(t, l)
			}
			t.Errorf("AcquireLease during the rewind = %v, want it to wait for the rewind", err)
		}
		return truncateView(ctx, tx)
	})
	if err != nil {
		t.Fatalf("Rewind with no leader in its namespace: %v", err)
	}
	if from != before {
		t.Errorf("Rewind returned %v, want the state it had, %v", from, before)
	}
	if _, ok, _ := store.Load(ctx, "p"); ok || viewRows(t, store) != 0 {
		t.Errorf("after the rewind: tracking row kept (%v), %d view rows", ok, viewRows(t, store))
	}
	l, err := same.AcquireLease(ctx, "p") // the transaction lock is gone with the transaction
	if err != nil {
		t.Fatalf("AcquireLease after the rewind: %v", err)
	}
	releaseLease(t, l)
}

// The online rewind runs under the projection's lease (the runner's reset): it succeeds while
// that lease holds the lock, sets tracking to the given start, and is refused once the lease
// has ended.
func TestRewindUnderTheLease(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, schema := newViewStore(t, func(string) postgres.Options { return postgres.Options{} })
	before := advance(t, store, "p", 42)
	lead, release, err := leaderTestElector(t, schema, time.Second).Acquire(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	start := tracking.State{Last: pos(7)}
	from, err := store.Rewind(lead, "p", start, truncateView)
	if err != nil || from != before {
		t.Fatalf("Rewind under the lease = %v, %v; want %v, nil", from, err, before)
	}
	if st, ok, _ := store.Load(ctx, "p"); !ok || st != start || viewRows(t, store) != 0 {
		t.Errorf("after the rewind: tracking %v (%v), %d view rows; want %v, 0 rows", st, ok, viewRows(t, store), start)
	}
	release()
	// A context that still carries the ended lease (but not its cancellation) is fenced off.
	if _, err := store.Rewind(context.WithoutCancel(lead), "p", tracking.State{}, nil); !errors.Is(err, projection.ErrLeadershipLost) {
		t.Errorf("Rewind under a released lease = %v, want ErrLeadershipLost", err)
	}
	if st, _, _ := store.Load(ctx, "p"); st != start {
		t.Errorf("the refused rewind moved tracking to %v", st)
	}
}

// The rewind's notification is sent when, and only when, it commits, and wakes a waiter in
// another process's store.
func TestRewindNotifiesWaiters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	channel := "rewind_" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "_")
	store, schema := newViewStore(t, func(string) postgres.Options { return postgres.Options{Channel: channel} })
	conn, err := pgx.ConnectConfig(ctx, pgtest.Config(t, schema).ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	waiter := postgres.New(pgtest.Pool(t, schema), postgres.Options{Channel: channel})
	defer func() { _ = waiter.Close() }()
	type waited struct {
		st  tracking.State
		err error
	}
	woke := make(chan waited, 1)
	go func() {
		st, err := waiter.Wait(ctx, "p", 9)
		woke <- waited{st, err}
	}()

	to := tracking.State{Last: pos(9)}
	if _, err := store.Rewind(ctx, "p", to, func(ctx context.Context, tx pgx.Tx) error {
		nctx, ncancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer ncancel()
		if n, err := conn.WaitForNotification(nctx); err == nil {
			t.Errorf("notification %q before the rewind committed", n.Payload)
		}
		return truncateView(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	n, err := conn.WaitForNotification(ctx)
	if err != nil || !strings.HasSuffix(n.Payload, " p") {
		t.Fatalf("notification after the rewind = %+v, %v; want one naming p", n, err)
	}
	w := <-woke
	if w.err != nil || w.st != to {
		t.Errorf("waiter woke with %v, %v; want %v", w.st, w.err, to)
	}
}

// The reset SQL and the rewind are one transaction: a reset that fails part-way leaves the
// view and the tracking row as they were.
func TestRewindIsAtomicWithTheResetSQL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, _ := newViewStore(t, func(string) postgres.Options { return postgres.Options{} })
	before := advance(t, store, "p", 42)
	_, err := store.Rewind(ctx, "p", tracking.State{}, func(ctx context.Context, tx pgx.Tx) error {
		if err := truncateView(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM no_such_table`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("Rewind with a failing reset = %v, want the reset's error", err)
	}
	if st, ok, _ := store.Load(ctx, "p"); !ok || st != before {
		t.Errorf("tracking after the failed rewind = %v (%v), want %v", st, ok, before)
	}
	if n := viewRows(t, store); n != 1 {
		t.Errorf("the failed rewind's TRUNCATE was committed: %d view rows", n)
	}
}

// A rewind deletes the events parked after the position it rewinds to (they are delivered
// again), and keeps those of other projections.
func TestRewindDeletesTheEventsParkedAfterIt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, _ := newViewStore(t, func(string) postgres.Options { return postgres.Options{} })
	for _, p := range []string{"p", "q"} {
		st := advance(t, store, p, 42)
		if err := store.Apply(ctx, p, st, st, func(ctx context.Context, tx pgx.Tx) error {
			for _, c := range []uint64{10, 30} {
				e := projection.Event{ID: fmt.Sprint("e", c), Type: "T", Stream: fmt.Sprint("s", c), Position: pos(c)}
				if err := store.Park(ctx, tx, p, e, errors.New("boom")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Rewind(ctx, "p", tracking.State{Last: pos(20)}, nil); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]int{"p": 1, "q": 2} {
		if ps, err := postgres.ListParkedStreams(ctx, store.Pool(), p); err != nil || len(ps) != want {
			t.Errorf("parked streams of %s after the rewind of p = %+v, %v; want %d", p, ps, err, want)
		}
	}
}
