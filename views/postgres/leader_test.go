package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// leaderTestElector returns an Elector on schema with short intervals, for tests.
func leaderTestElector(t *testing.T, schema string, check time.Duration) *postgres.Elector {
	t.Helper()
	return postgres.NewElector(pgtest.Config(t, schema).ConnConfig, postgres.ElectorOptions{
		RetryInterval: 100 * time.Millisecond,
		CheckInterval: check,
		Timeout:       5 * time.Second,
	})
}

// terminate kills the PostgreSQL backend pid, as an operator or a failover would.
func terminateBackend(t *testing.T, pid uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
	poll.UntilNil(t, 5*time.Second, fmt.Sprintf("backend %d has exited", pid), func() error {
		var alive bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, int64(pid)).Scan(&alive); err != nil {
			return err
		}
		if alive {
			return errors.New("still in pg_stat_activity")
		}
		return nil
	})
}

type acquiredLease struct {
	lease *postgres.Lease
	err   error
	at    time.Time
}

func acquireLeaseAsync(ctx context.Context, e *postgres.Elector, name string) <-chan acquiredLease {
	ch := make(chan acquiredLease, 1)
	go func() {
		l, err := e.AcquireLease(ctx, name)
		ch <- acquiredLease{l, err, time.Now()}
	}()
	return ch
}

func releaseLease(t *testing.T, l *postgres.Lease) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
}

func TestElectorContentionAndTakeoverAfterKill(t *testing.T) {
	schema := pgtest.NewSchema(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, second := leaderTestElector(t, schema, 200*time.Millisecond), leaderTestElector(t, schema, 200*time.Millisecond)

	l1, err := first.AcquireLease(ctx, "dogs")
	if err != nil {
		t.Fatalf("first AcquireLease: %v", err)
	}
	if l1.Err() != nil {
		t.Fatalf("fresh lease Err = %v, want nil", l1.Err())
	}
	standby := acquireLeaseAsync(ctx, second, "dogs")
	select {
	case got := <-standby:
		t.Fatalf("second elector led while the first held the lock: %+v", got)
	case <-time.After(time.Second):
	}

	killed := time.Now()
	terminateBackend(t, l1.PID())
	select {
	case <-l1.Lost():
		if !errors.Is(l1.Err(), postgres.ErrLeadershipLost) {
			t.Errorf("lost lease Err = %v, want ErrLeadershipLost", l1.Err())
		}
		t.Logf("leader saw its loss %v after the kill", time.Since(killed))
	case <-time.After(5 * time.Second):
		t.Fatal("Lost() did not fire within 5s of the lock connection's death")
	}
	var l2 *postgres.Lease
	select {
	case got := <-standby:
		if got.err != nil {
			t.Fatalf("second AcquireLease: %v", got.err)
		}
		l2 = got.lease
		t.Logf("standby took over %v after the kill", got.at.Sub(killed))
	case <-time.After(5 * time.Second):
		t.Fatal("standby did not take over within 5s of the leader's death")
	}
	if l2.PID() == l1.PID() {
		t.Errorf("both leases on backend %d", l2.PID())
	}
	releaseLease(t, l1) // releasing a lost lease is harmless

	// Release hands leadership over at once.
	third := acquireLeaseAsync(ctx, first, "dogs")
	select {
	case got := <-third:
		t.Fatalf("first elector led again while the second held the lock: %+v", got)
	case <-time.After(500 * time.Millisecond):
	}
	released := time.Now()
	releaseLease(t, l2)
	if !errors.Is(l2.Err(), postgres.ErrLeaseReleased) {
		t.Errorf("released lease Err = %v, want ErrLeaseReleased", l2.Err())
	}
	select {
	case <-l2.Lost():
	default:
		t.Error("Lost() not closed after Release")
	}
	select {
	case got := <-third:
		if got.err != nil {
			t.Fatalf("third AcquireLease: %v", got.err)
		}
		t.Logf("next leader took over %v after the release", got.at.Sub(released))
		releaseLease(t, got.lease)
	case <-time.After(3 * time.Second):
		t.Fatal("no takeover within 3s of Release")
	}
}

func TestElectorProjectionsAndNamespacesAreIndependent(t *testing.T) {
	schemaA, schemaB := pgtest.NewSchema(t), pgtest.NewSchema(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := leaderTestElector(t, schemaA, time.Second)
	var leases []*postgres.Lease
	for _, step := range []struct {
		e    *postgres.Elector
		name string
	}{
		{a, "dogs"},
		{a, "tricks"}, // another projection in the same schema
		{leaderTestElector(t, schemaB, time.Second), "dogs"}, // the same projection in another schema
		{postgres.NewElector(pgtest.Config(t, schemaA).ConnConfig, postgres.ElectorOptions{Namespace: "other"}), "dogs"},
	} {
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		l, err := step.e.AcquireLease(actx, step.name)
		acancel()
		if err != nil {
			t.Fatalf("AcquireLease(%q) with leases %d held: %v", step.name, len(leases), err)
		}
		leases = append(leases, l)
	}
	if got, want := leases[0].Namespace(), schemaA; got != want {
		t.Errorf("default namespace = %q, want the current schema %q", got, want)
	}
	if got, want := leases[0].Key(), postgres.LockKey(schemaA, "dogs"); got != want {
		t.Errorf("Key = %d, want LockKey(%q, dogs) = %d", got, schemaA, want)
	}
	for _, l := range leases {
		releaseLease(t, l)
	}
}

func TestElectorStandbyEndsWithContext(t *testing.T) {
	schema := pgtest.NewSchema(t)
	t.Parallel()
	e := leaderTestElector(t, schema, time.Second)
	l, err := e.AcquireLease(context.Background(), "dogs")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLease(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err = e.AcquireLease(ctx, "dogs")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("standby AcquireLease after its context ended = %v, want DeadlineExceeded", err)
	}
}

func TestElectorUnreachableServer(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	e := postgres.NewElector(cfg, postgres.ElectorOptions{Timeout: 2 * time.Second})
	_, err = e.AcquireLease(context.Background(), "dogs")
	if err == nil {
		t.Fatal("AcquireLease on a closed port succeeded")
	}
	for _, want := range []string{`"dogs"`, "open the lock connection"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := e.AcquireLease(context.Background(), ""); err == nil {
		t.Error("AcquireLease with an empty name succeeded")
	}
}

func TestLockKey(t *testing.T) {
	// The key must never change between releases, or replicas of different versions would not
	// contend: pin it to the documented hash (FNV-1a 64 of "projector\x00leader\x00public\x00dogs").
	if got, want := postgres.LockKey("public", "dogs"), int64(-7358958856420537424); got != want {
		t.Errorf("LockKey(public, dogs) = %d, want %d", got, want)
	}
	seen := map[int64]string{}
	for _, in := range [][2]string{{"public", "dogs"}, {"public", "tricks"}, {"other", "dogs"}, {"a", "bc"}, {"ab", "c"}, {"", "dogs"}} {
		k := postgres.LockKey(in[0], in[1])
		if prev, dup := seen[k]; dup {
			t.Errorf("LockKey(%q) = LockKey(%s) = %d", in, prev, k)
		}
		seen[k] = fmt.Sprint(in)
	}
}

func ExampleLockKey() {
	// The advisory lock that makes a process the leader of projection "dogs" in schema public;
	// pg_locks shows it as classid and objid, the high and low 32 bits.
	k := uint64(postgres.LockKey("public", "dogs"))
	fmt.Printf("classid=%d objid=%d\n", k>>32, k&0xffffffff)
	// Output: classid=2581576168 objid=3596012464
}

func ExampleElector() {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		fmt.Println(err)
		return
	}
	e := postgres.NewElector(cfg, postgres.ElectorOptions{})
	lease, err := e.AcquireLease(ctx, "dogs") // blocks while another process leads "dogs"
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = lease.Release(ctx) }()
	select {
	case <-lease.Lost():
		fmt.Println("stop processing:", lease.Err())
	case <-ctx.Done():
	}
}

// BenchmarkLeaseVerify measures the fence a batch pays before its commit: one pg_locks
// query inside the batch transaction.
func BenchmarkLeaseVerify(b *testing.B) {
	schema := pgtest.NewSchema(b)
	ctx := context.Background()
	cfg := pgtest.Config(b, schema).ConnConfig
	e := postgres.NewElector(cfg, postgres.ElectorOptions{})
	lead, release, err := e.Acquire(ctx, "dogs")
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for b.Loop() {
		if err := postgres.VerifyLeadership(lead, tx); err != nil {
			b.Fatal(err)
		}
	}
}
