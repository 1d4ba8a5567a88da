package resilience_test

import (
	"syscall"
	"testing"
	"time"
)

// TestStopMidBatch stops the projector in the middle of batches, which a fault proxy with
// latency between it and PostgreSQL keeps in flight most of the time: first by SIGTERM (it
// must finish or roll back the batch and exit 0 promptly), then by SIGKILL. Each time, with no
// projector running, the ledger must hold exactly the events its tracking row covers; a fresh
// projector then completes the workload exactly once.
func TestStopMidBatch(t *testing.T) {
	db := newDatabase(t)
	proxy := newProxy(t, db.host)
	srv, client := startEmulator(t)
	cfg := writeFile(t, "projections.yaml", ledgerConfig("stop", 0, 1000, false))
	wr := newWriter(client, standard())
	finished := startWriter(t, wr)

	proxy.SetLatency(40 * time.Millisecond)
	d := startDaemon(t, "projector-1", db.urlVia(proxy.Addr()), srv.URI(), cfg)
	atApplied(t, db.pool, 4000)
	stopAt := time.Now()
	if code := d.Signal(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("projector exited %d on SIGTERM, want 0", code)
	}
	t.Logf("SIGTERM: exit 0 after %v", time.Since(stopAt))
	if len(d.logLines("stopped")) == 0 {
		t.Error(`no "stopped" log line after SIGTERM`)
	}
	checkStoppedConsistent(t, db, client)

	d = startDaemon(t, "projector-2", db.urlVia(proxy.Addr()), srv.URI(), cfg)
	atApplied(t, db.pool, 10000)
	d.Signal(syscall.SIGKILL, 10*time.Second)
	t.Log("SIGKILL")
	checkStoppedConsistent(t, db, client)

	proxy.SetLatency(0)
	startDaemon(t, "projector-3", db.urlVia(proxy.Addr()), srv.URI(), cfg)
	finish(t, db, wr, finished)
}
