package resilience_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/faultproxy"
)

// TestStopMidBatch stops the projector in the middle of batches, which a fault proxy with
// latency between it and PostgreSQL keeps in flight most of the time: first by SIGTERM (it
// must finish or roll back the batch and exit 0 promptly), then by SIGKILL. Each time, with no
// projector running, the ledger must hold exactly the events its tracking row covers; a fresh
// projector then completes the workload exactly once.
func TestStopMidBatch(t *testing.T) {
	db := newDatabase(t)
	proxy, err := faultproxy.New(db.host)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = proxy.Close() }()
	srv := startEmulator(t)
	client := kurrentClient(t, srv.URI())
	cfg := writeFile(t, "projections.yaml", ledgerConfig("stop", 0, 1000, false))
	wr := newWriter(client, standard())
	finished := startWriter(t, wr)

	proxy.SetLatency(40 * time.Millisecond)
	d := startDaemon(t, "projector-1", db.urlVia(proxy.Addr()), srv.URI(), cfg)
	atApplied(t, db.pool, 4000)
	stopAt := time.Now()
	if code := d.signal(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("projector exited %d on SIGTERM, want 0", code)
	}
	t.Logf("SIGTERM: exit 0 after %v", time.Since(stopAt))
	if len(d.logLines("stopped")) == 0 {
		t.Error(`no "stopped" log line after SIGTERM`)
	}
	checkStoppedConsistent(t, db, client)

	d = startDaemon(t, "projector-2", db.urlVia(proxy.Addr()), srv.URI(), cfg)
	atApplied(t, db.pool, 10000)
	d.signal(syscall.SIGKILL, 10*time.Second)
	t.Log("SIGKILL")
	checkStoppedConsistent(t, db, client)

	proxy.SetLatency(0)
	startDaemon(t, "projector-3", db.urlVia(proxy.Addr()), srv.URI(), cfg)
	want := finish(t, db, wr, finished, "ledger")
	t.Log(checkLedger(t, db.pool, want))
}
