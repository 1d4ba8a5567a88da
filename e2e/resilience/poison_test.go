package resilience_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/views/postgres"
)

// TestPoisonEvent writes a workload with one poison deposit in the middle (its value cannot
// be cast to bigint) and projects it once under each error policy, each into its own database,
// next to a second projection (tally) of the same events that the poison does not affect.
func TestPoisonEvent(t *testing.T) {
	srv, client := startEmulator(t)
	w := standard()
	w.poisonAt = w.appends / 2
	wr := newWriter(client, w)
	startWriter(t, wr)()
	log := readLog(t, client)
	var poison logEvent
	var before []logEvent
	for _, e := range log {
		if e.poison {
			poison = e
			break
		}
		before = append(before, e)
	}
	if poison.id == "" || len(log) != w.deposits() {
		t.Fatalf("the log holds %d deposits and poison %+v; want %d and one poison", len(log), poison, w.deposits())
	}
	_, last := wr.progress()
	t.Logf("poison event %s in %s@%d at position %d, after %d good events", poison.id, poison.stream, poison.revision, poison.commit, len(before))

	// stopped checks a projection halted on the poison: the daemon and the other projection go
	// on, the status names the event, and the ledger holds exactly what its tracking row says,
	// all of it before the poison.
	stopped := func(t *testing.T, db *database, d *daemon) {
		t.Helper()
		var st projectionStatus
		poll.Until(t, time.Minute, "the ledger stops", func() bool {
			s, ok := d.status("ledger")
			st = s
			return ok && s.State == "stopped"
		})
		if f := st.Failed; f == nil || f.EventID != poison.id || f.Position.Commit != poison.commit || f.Type != typeDeposit ||
			f.Stream != poison.stream || !strings.Contains(f.Error, "bigint") {
			t.Errorf("status of the stopped ledger = %+v, want the poison event %s at %d in %s with the cast error", st.Failed, poison.id, poison.commit, poison.stream)
		}
		waitTracked(t, db.pool, "tally", last, time.Minute)
		t.Logf("tally: %s", checkApplied(t, db.pool, "tally_applied", log))
		commit, checkpoint := tracked(t, db.pool, "ledger")
		done := doneBy(log, commit, checkpoint)
		for _, e := range done {
			if e.poison {
				t.Fatalf("the ledger's tracking (commit %d, checkpoint %d) is past the poison at %d", commit, checkpoint, poison.commit)
			}
		}
		t.Logf("ledger stopped at commit %d: %s", commit, checkLedger(t, db.pool, done))
		if len(done) != len(before) {
			t.Errorf("the ledger stopped with %d events processed, want the %d good events before the poison (those of its batch included)", len(done), len(before))
		}
		if resp, err := http.Get("http://" + d.http + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("daemon unhealthy with one projection stopped: %v", err)
		} else {
			_ = resp.Body.Close()
		}
		if n := len(d.logLines("projection stopped")); n == 0 {
			t.Error(`no "projection stopped" log line`)
		}
	}

	t.Run("stop", func(t *testing.T) {
		db := newDatabase(t)
		d := startDaemon(t, "projector", db.url, srv.URI(), writeFile(t, "projections.yaml", ledgerConfig("stop", 0, 200, true)))
		stopped(t, db, d)
	})

	t.Run("retry", func(t *testing.T) {
		db := newDatabase(t)
		d := startDaemon(t, "projector", db.url, srv.URI(), writeFile(t, "projections.yaml", ledgerConfig("retry", 3, 200, true)))
		stopped(t, db, d)
		failed := 0
		for _, l := range d.logLines("event failed") {
			if l["policy"] == "retry" && l["event_id"] == poison.id {
				failed++
			}
		}
		if failed != 3 {
			t.Errorf("%d retries of the poison event logged, want 3", failed)
		}
	})

	t.Run("skip", func(t *testing.T) {
		db := newDatabase(t)
		d := startDaemon(t, "projector", db.url, srv.URI(), writeFile(t, "projections.yaml", ledgerConfig("skip", 1, 200, true)))
		waitTracked(t, db.pool, "ledger", last, time.Minute)
		waitTracked(t, db.pool, "tally", last, time.Minute)
		t.Log(checkLedger(t, db.pool, valid(log)))
		t.Logf("tally: %s", checkApplied(t, db.pool, "tally_applied", log))
		dl, err := postgres.ListDeadLetters(context.Background(), db.pool, "ledger", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl) != 1 || dl[0].Event.ID != poison.id || dl[0].Event.Stream != poison.stream || dl[0].Event.Revision != poison.revision ||
			dl[0].Event.Position.Commit != poison.commit || dl[0].Event.Type != typeDeposit ||
			!strings.Contains(string(dl[0].Event.Data), poisonValue) || !strings.Contains(dl[0].Error, "bigint") {
			t.Errorf("dead letters = %+v, want exactly the poison event with its error", dl)
		}
		if n, _ := d.status("ledger"); n.State == "stopped" {
			t.Errorf("ledger stopped under policy skip: %+v", n)
		}
		if v := d.metric(t, `projector_events_dead_lettered_total{projection="ledger"}`); v != 1 {
			t.Errorf("projector_events_dead_lettered_total = %v, want 1", v)
		}
		if n := len(d.logLines("event dead-lettered and skipped")); n != 1 {
			t.Errorf("%d dead-letter log lines, want 1", n)
		}
	})

	// An operator's story, without restarting the daemon: the ledger stops on a good event that
	// a view constraint rejects; the operator drops the constraint and resumes; the ledger then
	// stops on the poison, and the operator skips it.
	t.Run("resume-and-skip", func(t *testing.T) {
		db := newDatabase(t)
		blocked := before[len(before)/2]
		if _, err := db.pool.Exec(context.Background(), fmt.Sprintf(`CREATE TABLE ledger_applied (stream text NOT NULL,
			revision bigint NOT NULL, value bigint NOT NULL CONSTRAINT blocked CHECK (value <> %d))`, blocked.value)); err != nil {
			t.Fatal(err)
		}
		d := startDaemon(t, "projector", db.url, srv.URI(), writeFile(t, "projections.yaml", ledgerConfig("stop", 0, 200, true)))
		stoppedOn := func(e logEvent) {
			t.Helper()
			poll.Until(t, time.Minute, "the ledger stops on "+e.id, func() bool {
				s, ok := d.status("ledger")
				return ok && s.State == "stopped" && s.Failed != nil && s.Failed.EventID == e.id
			})
			commit, checkpoint := tracked(t, db.pool, "ledger")
			done := doneBy(log, commit, checkpoint)
			if len(done) == 0 || done[len(done)-1].commit >= e.commit {
				t.Fatalf("stopped on the event at %d with tracking at %d", e.commit, commit)
			}
			t.Logf("stopped before %s: %s", e.id, checkLedger(t, db.pool, done))
		}
		stoppedOn(blocked)
		if _, err := db.pool.Exec(context.Background(), `ALTER TABLE ledger_applied DROP CONSTRAINT blocked`); err != nil {
			t.Fatal(err)
		}
		command(t, d, "resume")
		stoppedOn(poison)
		command(t, d, "skip")
		waitTracked(t, db.pool, "ledger", last, time.Minute)
		t.Log(checkLedger(t, db.pool, valid(log)))
		if d.Exited() {
			t.Fatal("the daemon exited")
		}
		dl, err := postgres.ListDeadLetters(context.Background(), db.pool, "ledger", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl) != 1 || dl[0].Event.ID != poison.id {
			t.Errorf("dead letters after skip = %+v, want the poison event", dl)
		}
		if s, _ := d.status("ledger"); s.State == "stopped" {
			t.Errorf("ledger still stopped after skip: %+v", s)
		}
	})
}

// command posts an operator's command (resume or skip) for the ledger to d.
func command(t *testing.T, d *daemon, verb string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+d.http+"/v1/projections/ledger/"+verb, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", verb, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", verb, resp.StatusCode, b)
	}
}
