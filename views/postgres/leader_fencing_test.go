package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// TestLeaderInterfaceLosesContextAndVerifyFences checks the projection.Leader form: the lead
// context carries the lease, Verify inside another connection's transaction sees the lock, and
// once the lock connection dies Verify refuses at once (before the periodic check) and the lead
// context ends with ErrLeadershipLost.
func TestLeaderInterfaceLosesContextAndVerifyFences(t *testing.T) {
	schema := pgtest.NewSchema(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := leaderTestElector(t, schema, time.Hour) // no periodic check: Verify and Check must see it alone

	lead, releaseLead, err := e.Acquire(ctx, "dogs")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	defer releaseLead()
	lease, ok := postgres.LeaseFromContext(lead)
	if !ok {
		t.Fatal("LeaseFromContext(lead) found no lease")
	}
	if _, ok := postgres.LeaseFromContext(ctx); ok {
		t.Error("LeaseFromContext found a lease in a context without one")
	}

	conn, err := pgx.ConnectConfig(ctx, pgtest.Config(t, schema).ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	verify := func() error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		return lease.Verify(lead, tx)
	}
	if err := verify(); err != nil {
		t.Fatalf("Verify while leading: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.VerifyLeadership(lead, tx); err != nil {
		t.Errorf("VerifyLeadership while leading: %v", err)
	}
	if err := postgres.VerifyLeadership(ctx, tx); err != nil {
		t.Errorf("VerifyLeadership without a lease: %v", err)
	}
	_ = tx.Rollback(ctx)
	if err := lease.Check(ctx); err != nil {
		t.Fatalf("Check while leading: %v", err)
	}

	terminateBackend(t, lease.PID())
	poll.Until(t, 5*time.Second, "Verify sees the lock connection gone", func() bool {
		err = verify()
		return err != nil
	})
	if !errors.Is(err, postgres.ErrLeadershipLost) {
		t.Fatalf("Verify after the lock connection died = %v, want ErrLeadershipLost", err)
	}
	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.VerifyLeadership(lead, tx); !errors.Is(err, postgres.ErrLeadershipLost) {
		t.Errorf("VerifyLeadership after the loss = %v, want ErrLeadershipLost", err)
	}
	_ = tx.Rollback(ctx)
	select {
	case <-lead.Done():
		if cause := context.Cause(lead); !errors.Is(cause, postgres.ErrLeadershipLost) {
			t.Errorf("lead context cause = %v, want ErrLeadershipLost", cause)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("lead context did not end after Verify found the lock gone")
	}
	releaseLead()
	releaseLead() // idempotent
}

func TestLeaseCheckDetectsDeadConnection(t *testing.T) {
	schema := pgtest.NewSchema(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := leaderTestElector(t, schema, time.Hour)
	lead, releaseLead, err := e.Acquire(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLead()
	lease, _ := postgres.LeaseFromContext(lead)
	terminateBackend(t, lease.PID())
	poll.Until(t, 5*time.Second, "Check sees the lock connection gone", func() bool {
		err = lease.Check(ctx)
		return err != nil
	})
	if !errors.Is(err, postgres.ErrLeadershipLost) {
		t.Fatalf("Check on a killed lock connection = %v, want ErrLeadershipLost", err)
	}
	select {
	case <-lead.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("lead context did not end after Check failed")
	}
}

func TestLeaderReleaseEndsLeadContext(t *testing.T) {
	schema := pgtest.NewSchema(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := leaderTestElector(t, schema, 100*time.Millisecond)
	lead, releaseLead, err := e.Acquire(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	releaseLead()
	if !errors.Is(context.Cause(lead), postgres.ErrLeaseReleased) {
		t.Errorf("lead cause after release = %v, want ErrLeaseReleased", context.Cause(lead))
	}
	// The lock is free again.
	actx, acancel := context.WithTimeout(ctx, 2*time.Second)
	defer acancel()
	l, err := e.AcquireLease(actx, "dogs")
	if err != nil {
		t.Fatalf("AcquireLease after release: %v", err)
	}
	releaseLease(t, l)
}

// A batch whose leader's lock connection has died is not committed, even before any check of
// the Lease has noticed: neither its view changes nor its tracking advance.
func TestApplyRefusesToCommitWithoutTheLock(t *testing.T) {
	store, schema := newStore(t, postgres.Options{})
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := pgtest.Pool(t, schema)
	if _, err := pool.Exec(ctx, `CREATE TABLE seen (n int)`); err != nil {
		t.Fatal(err)
	}
	e := leaderTestElector(t, schema, time.Hour) // no periodic check: the batch's fence alone
	lead, releaseLead, err := e.Acquire(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLead()
	write := func(n int) func(context.Context, pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error {
			return postgres.Queue(ctx, tx, `INSERT INTO seen VALUES ($1)`, n)
		}
	}
	first := tracking.State{Last: pos(100)}
	if err := store.Apply(lead, "dogs", tracking.State{}, first, write(1)); err != nil {
		t.Fatalf("Apply while leading: %v", err)
	}
	lease, _ := postgres.LeaseFromContext(lead)
	terminateBackend(t, lease.PID())
	err = store.Apply(lead, "dogs", first, tracking.State{Last: pos(200)}, write(2))
	if !errors.Is(err, projection.ErrLeadershipLost) || !strings.Contains(err.Error(), "not committed") {
		t.Fatalf("Apply after the lock connection died = %v, want a batch not committed for ErrLeadershipLost", err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM seen`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	st, _, err := store.Load(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1 || st != first {
		t.Errorf("after the refused batch: %d rows, tracking %v; want 1 row and %v", rows, st, first)
	}
}
