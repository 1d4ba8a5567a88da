package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/migrations"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T, opts postgres.Options) (*postgres.Store, string) {
	t.Helper()
	schema := pgtest.NewSchema(t)
	store := postgres.New(pgtest.Pool(t, schema), opts)
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store, schema
}

func pos(c uint64) tracking.Position { return tracking.Position{Commit: c, Prepare: c} }

func TestMigrateIsSafeFromSeveralReplicasAtOnce(t *testing.T) {
	t.Parallel()
	schema := pgtest.NewSchema(t)
	pool := pgtest.Pool(t, schema)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.New(pool, postgres.Options{}).Migrate(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	if err := postgres.New(pool, postgres.Options{}).Migrate(context.Background()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	var n int
	var names string
	if err := pool.QueryRow(context.Background(), `SELECT count(*), string_agg(name, ',' ORDER BY version) FROM projector_migrations`).Scan(&n, &names); err != nil {
		t.Fatal(err)
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range all {
		want = append(want, m.Name)
	}
	if n != len(all) || names != strings.Join(want, ",") {
		t.Errorf("applied = %d (%s), want each migration once", n, names)
	}
}

func TestApplyAdvancesTrackingByCompareAndSet(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE seen (n int)`); err != nil {
		t.Fatal(err)
	}
	insert := func(n int) func(context.Context, pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error {
			return postgres.Queue(ctx, tx, `INSERT INTO seen VALUES ($1)`, n)
		}
	}
	s1 := tracking.State{Last: pos(100)}
	if err := store.Apply(ctx, "p", tracking.State{}, s1, insert(1)); err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, "p", tracking.State{}, tracking.State{Last: pos(200)}, insert(2)); !errors.Is(err, tracking.ErrConflict) {
		t.Errorf("second writer from the zero state: %v, want ErrConflict", err)
	}
	if err := store.Apply(ctx, "p", tracking.State{Last: pos(50)}, tracking.State{Last: pos(200)}, insert(3)); !errors.Is(err, tracking.ErrConflict) {
		t.Errorf("writer from a stale state: %v, want ErrConflict", err)
	}
	s2 := tracking.State{Last: pos(100), Checkpoint: 300}
	if err := store.Apply(ctx, "p", s1, s2, insert(4)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := store.Load(ctx, "p")
	if err != nil || !ok || got != s2 {
		t.Fatalf("Load = %v, %v, %v; want %v", got, ok, err, s2)
	}
	if _, ok, _ := store.Load(ctx, "other"); ok {
		t.Error("Load of an untracked projection reported a row")
	}
	var seen string
	if err := store.Pool().QueryRow(ctx, `SELECT string_agg(n::text, ',' ORDER BY n) FROM seen`).Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if seen != "1,4" {
		t.Errorf("view rows = %s, want 1,4 (the conflicting batches rolled back)", seen)
	}
}

func TestApplyRollsBackOnHandlerErrorAndRejectsHugePositions(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE seen (n int)`); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := store.Apply(ctx, "p", tracking.State{}, tracking.State{Last: pos(10)}, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO seen VALUES (1)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Apply = %v, want the handler's error", err)
	}
	if _, ok, _ := store.Load(ctx, "p"); ok {
		t.Error("tracking advanced although the handler failed")
	}
	huge := tracking.State{Last: tracking.Position{Commit: 1 << 63, Prepare: 1 << 63}}
	err = store.Apply(ctx, "p", tracking.State{}, huge, func(context.Context, pgx.Tx) error { return nil })
	if !errors.Is(err, tracking.ErrPositionTooLarge) || !strings.Contains(err.Error(), `"p"`) {
		t.Errorf("Apply past 2^63-1 = %v, want ErrPositionTooLarge naming the projection", err)
	}
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM seen`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows = %d (%v), want 0", n, err)
	}
}

func TestQueuedStatementsRunInOrderAndFailuresNameTheStatement(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE seen (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	var count int
	err := store.Apply(ctx, "p", tracking.State{}, tracking.State{Last: pos(10)}, func(ctx context.Context, tx pgx.Tx) error {
		for i := range 5 {
			if err := postgres.Queue(ctx, tx, `INSERT INTO seen VALUES ($1)`, i); err != nil {
				return err
			}
		}
		if n := tx.(*postgres.Tx).Pending(); n != 5 {
			return fmt.Errorf("pending = %d, want 5", n)
		}
		// A direct query sees the queued statements: they are flushed first.
		return tx.QueryRow(ctx, `SELECT count(*) FROM seen`).Scan(&count)
	})
	if err != nil || count != 5 {
		t.Fatalf("Apply = %v, count seen inside = %d; want nil, 5", err, count)
	}
	err = store.Apply(ctx, "p", tracking.State{Last: pos(10)}, tracking.State{Last: pos(20)}, func(ctx context.Context, tx pgx.Tx) error {
		_ = postgres.Queue(ctx, tx, `INSERT INTO seen VALUES (100)`)
		_ = postgres.Queue(ctx, tx, `INSERT INTO seen VALUES (1)`) // duplicate key
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "queued statement 2 of 2 (INSERT INTO seen VALUES (1))") {
		t.Errorf("Apply with a failing queued statement = %v, want an error naming statement 2", err)
	}
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM seen`).Scan(&count); err != nil || count != 5 {
		t.Errorf("rows = %d (%v), want 5", count, err)
	}
	if err := store.Apply(ctx, "p", tracking.State{Last: pos(10)}, tracking.State{Last: pos(20)}, func(ctx context.Context, tx pgx.Tx) error {
		return tx.Commit(ctx)
	}); err == nil || !strings.Contains(err.Error(), "must not commit") {
		t.Errorf("a handler committing: %v, want a refusal", err)
	}
}

func TestDeadLetterIsCommittedWithTheBatch(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	e := projection.Event{ID: "4b9bd1c2-8e0a-4f5c-9d59-2f8e6c2b7a10", Type: "T", Stream: "s", Revision: 3, Position: pos(77),
		Data: []byte(`{"a":1}`), ContentType: "application/json", Created: time.Now().UTC()}
	err := store.Apply(ctx, "p", tracking.State{}, tracking.State{Last: pos(77)}, func(ctx context.Context, tx pgx.Tx) error {
		return store.DeadLetter(ctx, tx, "p", e, errors.New("cannot parse"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var id, msg string
	var commit int64
	if err := store.Pool().QueryRow(ctx, `SELECT event_id, error, commit_position FROM projector_dead_letters WHERE projection = 'p'`).Scan(&id, &msg, &commit); err != nil {
		t.Fatal(err)
	}
	if id != e.ID || msg != "cannot parse" || commit != 77 {
		t.Errorf("dead letter = %s %q %d", id, msg, commit)
	}
}

func TestWaitAcrossStoresSharesOneListenConnection(t *testing.T) {
	t.Parallel()
	schema := pgtest.NewSchema(t)
	channel := "chan_" + schema
	writer := postgres.New(pgtest.Pool(t, schema), postgres.Options{Channel: channel})
	if err := writer.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The waiting side has its own pool, as another process would.
	reader := postgres.New(pgtest.Pool(t, schema), postgres.Options{Channel: channel})
	defer reader.Close()
	ctx := context.Background()

	// A timeout returns the current state and the context's error.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := reader.Wait(tctx, "p", 10)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an untracked projection = %v, want deadline exceeded", err)
	}

	const waiters = 8
	results := make(chan error, waiters)
	for i := range waiters {
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			target := uint64(100 * (i%2 + 1)) // half wait for 100, half for 200
			s, err := reader.Wait(wctx, "p", target)
			if err == nil && !s.Done(target) {
				err = fmt.Errorf("Wait(%d) returned %v", target, s)
			}
			results <- err
		}()
	}
	// Once all waiters are blocked, exactly one LISTEN connection serves them.
	// The wait's own error is dropped: the checks after it say what is wrong.
	var listening int
	_ = poll.Wait(5*time.Second, func() error {
		if err := writer.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query = $1`, `LISTEN "`+channel+`"`).Scan(&listening); err != nil {
			t.Fatal(err)
		}
		if listening > 0 && reader.Waiting("p") == waiters {
			return nil
		}
		return errors.New("not all waiters blocked on a LISTEN connection")
	})
	if n := reader.Waiting("p"); n != waiters {
		t.Fatalf("%d waiters blocked, want %d", n, waiters)
	}
	if listening != 1 {
		t.Errorf("LISTEN connections = %d, want 1 shared by %d waiters", listening, waiters)
	}
	if err := writer.Apply(ctx, "p", tracking.State{}, tracking.State{Last: pos(100)}, noop); err != nil {
		t.Fatal(err)
	}
	// A checkpoint past 200 makes 200 done though no event is at it.
	if err := writer.Apply(ctx, "p", tracking.State{Last: pos(100)}, tracking.State{Last: pos(100), Checkpoint: 201}, noop); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	// #4970: a checkpoint at 300 does not make 300 itself done.
	tctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := writer.Apply(ctx, "p", tracking.State{Last: pos(100), Checkpoint: 201}, tracking.State{Last: pos(100), Checkpoint: 300}, noop); err != nil {
		t.Fatal(err)
	}
	if s, err := reader.Wait(tctx, "p", 300); !errors.Is(err, context.DeadlineExceeded) || s.Checkpoint != 300 {
		t.Errorf("Wait(300) with checkpoint 300 = %v, %v; want a timeout at checkpoint 300", s, err)
	}
}

func noop(context.Context, pgx.Tx) error { return nil }

func TestCloseEndsPendingWaits(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	done := make(chan error, 1)
	go func() {
		_, err := store.Wait(context.Background(), "p", 10)
		done <- err
	}()
	poll.Until(t, 5*time.Second, "the waiter blocks", func() bool { return store.Waiting("p") == 1 })
	_ = store.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Wait after Close = %v, want a closed-store error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still blocked 5s after Close")
	}
	if _, err := store.Wait(context.Background(), "p", 10); err == nil {
		t.Error("Wait on a closed store succeeded")
	}
}
