package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/projector-dev/projector/internal/faultproxy"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/postgres"
)

// TestSubscriptionsDropped drops every subscription of the emulator again and again while the
// workload is written and projected: the projector must resubscribe after its tracked
// position, losing and doubling nothing, and count the restarts.
func TestSubscriptionsDropped(t *testing.T) {
	db := newDatabase(t)
	srv, client := startEmulator(t)
	d := startDaemon(t, "projector", db.url, srv.URI(), ledgerFile(t))

	wr := newWriter(client, standard())
	start := time.Now()
	finished := startWriter(t, wr)
	drops := 0
	for at := 1000; at < wr.w.deposits(); at += 1500 {
		atApplied(t, db.pool, at)
		srv.DropSubscriptions(status.Error(codes.Unavailable, "resilience: subscriptions dropped"))
		drops++
	}
	finished()
	t.Logf("wrote %d deposits in %v, dropping every subscription %d times as the ledger progressed", wr.w.deposits(), time.Since(start), drops)
	_, last := wr.progress()
	waitTracked(t, db.pool, "ledger", last, time.Minute)
	want := readLog(t, client)
	if len(want) != wr.w.deposits() {
		t.Fatalf("the log holds %d deposits, want %d", len(want), wr.w.deposits())
	}
	t.Log(checkLedger(t, db.pool, want))
	if r := d.metric(t, `projector_subscription_restarts_total{projection="ledger"}`); r < 1 {
		t.Errorf("projector_subscription_restarts_total = %v after %d drops, want at least 1", r, drops)
	} else {
		t.Logf("subscription restarts counted: %v; logged: %d", r, len(d.logLines("subscription restarted")))
	}
}

// finish waits for the writer, then for the ledger to process the last deposit, and checks
// that the ledger holds every deposit of the log exactly once.
func finish(t *testing.T, db *database, wr *writer, finished func()) {
	t.Helper()
	finished()
	_, last := wr.progress()
	waitTracked(t, db.pool, "ledger", last, 90*time.Second)
	want := readLog(t, wr.client)
	if len(want) < wr.w.deposits() {
		t.Fatalf("the log holds %d deposits, want at least %d", len(want), wr.w.deposits())
	}
	t.Log(checkLedger(t, db.pool, want))
}

// cutThenBlackhole cuts every connection through proxy when the ledger holds 2,000, 6,000 and
// 10,000 events, then black-holes them (proxy.Pause) at 14,000, and returns how many
// connections it cut.
func cutThenBlackhole(t *testing.T, db *database, proxy *faultproxy.Proxy) int {
	t.Helper()
	cut := 0
	for _, at := range []int{2000, 6000, 10000} {
		atApplied(t, db.pool, at)
		cut += proxy.CutAll()
	}
	atApplied(t, db.pool, 14000)
	proxy.Pause()
	return cut
}

// checkStoppedConsistent asserts, while no projector runs, that the ledger holds exactly the
// events its tracking row says are processed: a batch is committed whole with its tracking
// advance, or not at all.
func checkStoppedConsistent(t *testing.T, db *database, c *kurrentdb.Client) {
	t.Helper()
	commit, checkpoint := tracked(t, db.pool, "ledger")
	done := doneBy(readLog(t, c), commit, checkpoint)
	t.Logf("stopped at commit %d, checkpoint %d: %s", commit, checkpoint, checkLedger(t, db.pool, done))
}

// TestEmulatorRestartedOnItsData kills the emulator binary (SIGKILL) twice in the middle of
// the workload and starts it again on the same address and --data directory: the writer and
// the projector reconnect, and the view holds every event of the reloaded log exactly once.
func TestEmulatorRestartedOnItsData(t *testing.T) {
	db := newDatabase(t)
	addr, data := testbin.FreeAddr(t), t.TempDir()
	emu := startEmulatorBinary(t, addr, data)
	uri := "kurrentdb://" + addr + "?tls=false"
	client := kurrentClient(t, uri)
	d := startDaemon(t, "projector", db.url, uri, ledgerFile(t))

	wr := newWriter(client, standard())
	wr.pace = 2 * time.Millisecond
	wr.redial = func() (*kurrentdb.Client, error) {
		c, err := kurrent.NewClient(uri, kurrent.ClientOptions{})
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
		return c, err
	}
	finished := startWriter(t, wr)
	for i, at := range []int{5000, 12000} {
		// In the middle of the workload: the writer has appended at deposits, the projector
		// some of them.
		poll.Until(t, 90*time.Second, fmt.Sprintf("%d deposits written", at), func() bool { n, _ := wr.progress(); return n >= at })
		atApplied(t, db.pool, at/2)
		if code := emu.Signal(syscall.SIGKILL, 10*time.Second); code != -1 {
			t.Logf("emulator exit code %d", code)
		}
		c, _ := tracked(t, db.pool, "ledger")
		n, _ := wr.progress()
		t.Logf("restart %d: emulator killed with the ledger at position %d, %d deposits written", i+1, c, n)
		// Deliberate: the emulator stays down for a while (it has already exited), longer than
		// the official client's discovery attempts (about a second), so the writer and the
		// projector meet refused connections and a client closed for good before it is back.
		time.Sleep(1500 * time.Millisecond)
		emu = startEmulatorBinary(t, addr, data)
	}
	finish(t, db, wr, finished)
	restarts := d.metric(t, `projector_subscription_restarts_total{projection="ledger"}`) +
		d.ledgerErrors(t, "source")
	if restarts < 1 {
		t.Errorf("no subscription restart or source error counted after two emulator restarts")
	}
	t.Logf("writer retried %d appends; projector counted %v restarts/source errors", wr.failures, restarts)
}

// TestPostgresBackendsKilled terminates every PostgreSQL session of the projector
// (pg_terminate_backend: batch connections, the LISTEN connection and the leadership lock
// connection) again and again while it works.
func TestPostgresBackendsKilled(t *testing.T) {
	db := newDatabase(t)
	srv, client := startEmulator(t)
	d := startDaemon(t, "projector", db.url, srv.URI(), ledgerFile(t))

	wr := newWriter(client, standard())
	finished := startWriter(t, wr)
	kills, rounds := 0, 0
	for at := 1000; at < wr.w.deposits(); at += 3000 {
		atApplied(t, db.pool, at)
		kills += db.killBackends(t)
		rounds++
	}
	t.Logf("killed %d backends in %d rounds", kills, rounds)
	finish(t, db, wr, finished)
	if kills == 0 {
		t.Fatal("no backend was killed: the fault was not injected")
	}
	errs := d.ledgerErrors(t, "store", "leadership")
	if errs < 1 {
		t.Errorf("projector_errors_total{kind=store|leadership} = %v after %d killed backends, want at least 1", errs, kills)
	}
}

// TestPostgresConnectionsCutAndBlackholed puts a fault proxy between the projector and
// PostgreSQL, cuts every connection several times and black-holes them for a few seconds.
func TestPostgresConnectionsCutAndBlackholed(t *testing.T) {
	db := newDatabase(t)
	proxy := newProxy(t, db.host)
	srv, client := startEmulator(t)
	d := startDaemon(t, "projector", db.urlVia(proxy.Addr()), srv.URI(), ledgerFile(t))

	wr := newWriter(client, standard())
	finished := startWriter(t, wr)
	cut := cutThenBlackhole(t, db, proxy)
	// Deliberate: a grace period for commits already past the proxy when it paused (nothing
	// observable says they have landed), then 2.5s more of the black hole, in which the
	// ledger must not move: 3s of fault in all.
	time.Sleep(500 * time.Millisecond)
	held := applied(t, db.pool, "ledger_applied")
	time.Sleep(2500 * time.Millisecond)
	if n := applied(t, db.pool, "ledger_applied"); n != held {
		t.Errorf("the ledger moved from %d to %d events while PostgreSQL was black-holed", held, n)
	}
	proxy.Resume()
	t.Logf("cut %d connections, then black-holed PostgreSQL for 3s with %d events in the ledger", cut, held)
	// PostgreSQL "restarts": every connection cut and new ones refused for 3 seconds.
	atApplied(t, db.pool, held+2000)
	proxy.SetRefusing(true)
	down := applied(t, db.pool, "ledger_applied")
	cut = proxy.CutAll()
	time.Sleep(3 * time.Second) // deliberate: PostgreSQL stays unreachable for 3s
	proxy.SetRefusing(false)
	t.Logf("PostgreSQL down for 3s (%d connections cut, new ones refused) with %d events in the ledger", cut, down)
	finish(t, db, wr, finished)
	errs := d.ledgerErrors(t, "store", "leadership")
	if errs < 1 {
		t.Errorf("projector_errors_total{kind=store|leadership} = %v after cut and black-holed connections, want at least 1", errs)
	}
}

// TestKurrentDBConnectionsCutAndBlackholed puts a fault proxy between the projector and the
// emulator, cuts every connection several times and black-holes them for a few seconds.
func TestKurrentDBConnectionsCutAndBlackholed(t *testing.T) {
	db := newDatabase(t)
	srv, client := startEmulator(t)
	proxy := newProxy(t, srv.Addr())
	d := startDaemon(t, "projector", db.url, "kurrentdb://"+proxy.Addr()+"?tls=false", ledgerFile(t))

	wr := newWriter(client, standard())
	finished := startWriter(t, wr)
	cut := cutThenBlackhole(t, db, proxy)
	time.Sleep(3 * time.Second) // deliberate: KurrentDB stays black-holed for 3s
	proxy.Resume()
	atApplied(t, db.pool, 16000)
	proxy.SetLatency(300 * time.Millisecond)
	time.Sleep(2 * time.Second) // deliberate: the latency stays on for 2s
	proxy.SetLatency(0)
	t.Logf("cut %d connections, black-holed KurrentDB for 3s, then slowed it by 300ms for 2s", cut)
	finish(t, db, wr, finished)
	if r := d.metric(t, `projector_subscription_restarts_total{projection="ledger"}`); r < 1 {
		t.Errorf("projector_subscription_restarts_total = %v after %d cut connections, want at least 1", r, cut)
	}
}

// TestLeaderKilledStandbyTakesOver runs two projectors on one database; the leader is
// SIGKILLed in the middle of the workload, and the standby must take over within seconds.
func TestLeaderKilledStandbyTakesOver(t *testing.T) {
	db := newDatabase(t)
	srv, client := startEmulator(t)
	cfg := ledgerFile(t)
	daemons := []*daemon{
		startDaemon(t, "projector-a", db.url, srv.URI(), cfg),
		startDaemon(t, "projector-b", db.url, srv.URI(), cfg),
	}
	wr := newWriter(client, standard())
	finished := startWriter(t, wr)

	leaders := func() []*daemon {
		var out []*daemon
		for _, d := range daemons {
			if s, ok := d.status("ledger"); ok && s.Leader {
				out = append(out, d)
			}
		}
		return out
	}
	var leader *daemon
	poll.Until(t, 30*time.Second, "one projector leads", func() bool {
		l := leaders()
		if len(l) > 1 {
			t.Fatalf("two leaders at once: %s and %s", l[0].Name, l[1].Name)
		}
		if len(l) == 1 {
			leader = l[0]
		}
		return leader != nil
	})
	poll.Until(t, time.Minute, "the leader is half way", func() bool {
		if l := leaders(); len(l) > 1 {
			t.Fatalf("two leaders at once: %s and %s", l[0].Name, l[1].Name)
		}
		return applied(t, db.pool, "ledger_applied") >= 8000
	})
	standby := daemons[0]
	if standby == leader {
		standby = daemons[1]
	}
	killed := time.Now()
	leader.Signal(syscall.SIGKILL, 10*time.Second)
	poll.Until(t, 10*time.Second, standby.Name+" leads", func() bool {
		s, ok := standby.status("ledger")
		return ok && s.Leader
	})
	before, _ := tracked(t, db.pool, "ledger")
	poll.Until(t, 10*time.Second, standby.Name+" commits", func() bool {
		c, _ := tracked(t, db.pool, "ledger")
		return c > before
	})
	t.Logf("%s SIGKILLed; %s led and committed %v later", leader.Name, standby.Name, time.Since(killed))
	finish(t, db, wr, finished)
	if v := standby.metric(t, `projector_leader{projection="ledger"}`); v != 1 {
		t.Errorf("projector_leader of the new leader = %v, want 1", v)
	}
}

// TestLeaderLockConnectionKilled runs two projectors and kills only the leader's advisory-lock
// connection (found in pg_locks), three times: each time the leader must stop processing and
// leadership may move, with no event lost or doubled.
func TestLeaderLockConnectionKilled(t *testing.T) {
	db := newDatabase(t)
	srv, client := startEmulator(t)
	cfg := ledgerFile(t)
	a := startDaemon(t, "projector-a", db.url, srv.URI(), cfg)
	b := startDaemon(t, "projector-b", db.url, srv.URI(), cfg)
	wr := newWriter(client, standard())
	finished := startWriter(t, wr)
	k := uint64(postgres.LockKey("public", "ledger"))
	for _, at := range []int{3000, 8000, 13000} {
		atApplied(t, db.pool, at)
		var pid int64
		poll.Until(t, 10*time.Second, "a projector holds the ledger's lock", func() bool {
			err := db.pool.QueryRow(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1`, int64(k>>32), int64(k&0xffffffff)).Scan(&pid)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				t.Fatalf("find the leader's lock connection: %v", err)
			}
			return err == nil
		})
		var killed bool
		if err := db.pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
			t.Fatalf("terminate the lock connection %d: %v", pid, err)
		}
		sa, _ := a.status("ledger")
		sb, _ := b.status("ledger")
		t.Logf("killed lock backend %d at %d events (leader: a=%v b=%v)", pid, at, sa.Leader, sb.Leader)
	}
	finish(t, db, wr, finished)
	for _, d := range []*daemon{a, b} {
		if s, ok := d.status("ledger"); !ok || s.State == "stopped" {
			t.Errorf("%s: ledger state %q after the lock faults, want it leading or on standby", d.Name, s.State)
		}
	}
	lost := a.ledgerErrors(t, "leadership") + b.ledgerErrors(t, "leadership")
	changes := len(a.logLines("projection state changed")) + len(b.logLines("projection state changed"))
	t.Logf("leadership errors counted: %v; state changes logged: %d", lost, changes)
	if lost < 1 {
		t.Errorf("projector_errors_total{kind=leadership} = %v after three lost locks, want at least 1", lost)
	}
}
