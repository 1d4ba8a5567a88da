package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// partitionedTicks is one projection in four partitions that records every tick event it
// applies, one row per event in the order applied (seq), so a test can tell an event lost,
// applied twice, or applied out of its stream's order.
const partitionedTicks = `projections:
  - name: ticks
    partitions: 4
    batch: {size: 50}
` + ticksBody

// ticksBody is the rest of the ticks projection, after its partitions and batch keys.
const ticksBody = `    schema: CREATE TABLE IF NOT EXISTS seen_ticks (seq bigserial PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL);
    handlers:
      "__main__:Tick.Happened": INSERT INTO seen_ticks (stream, revision) VALUES (@stream_id, @revision)
`

// partitionLeaders returns, from a replica's /v1/projections, the partitions of ticks that the
// replica leads and the member each partition is reported led by.
func partitionLeaders(t *testing.T, addr string) (led []string, members map[string]string) {
	t.Helper()
	var l httpapi.ListJSON
	getJSON(t, "http://"+addr+"/v1/projections", &l)
	members = map[string]string{}
	for _, p := range l.Projections {
		for _, part := range p.Partitions {
			if part.Leader {
				led = append(led, part.Name)
			}
			members[part.Name] = part.LeaderMember
		}
	}
	return led, members
}

// TestPartitionedProjectionSurvivesKilledLeaders runs three replicas of a projection in four
// partitions while events are appended throughout: the partitions spread over the replicas;
// three times the replica that leads ticks#0 is killed (SIGKILL), the others take its
// partitions, and it is started again and takes its share back; in the end
// every stream's events are in the view exactly once and in the stream's order, and a wait for
// the projection on any replica waits for every partition.
func TestPartitionedProjectionSurvivesKilledLeaders(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	cfgFile := writeFile(t, "projections.yaml", partitionedTicks)
	tk := startTicker(client)
	startReplica := func(id string) balanceReplica {
		addr := testbin.FreeAddr(t)
		env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile, "PROJECTOR_MEMBER_ID="+id)
		r := balanceReplica{id: id, addr: addr, p: start(t, projectorBin, env, "run")}
		healthy(t, r.p, r.addr)
		return r
	}
	rs := []balanceReplica{startReplica("r1"), startReplica("r2"), startReplica("r3")}
	// The four partitions are units of work of their own: every replica leads at least one.
	spread := func() {
		t.Helper()
		poll.UntilNil(t, 60*time.Second, "the partitions spread over the three replicas", func() error {
			total := 0
			for _, r := range rs {
				led, _ := partitionLeaders(t, r.addr)
				if len(led) == 0 {
					return fmt.Errorf("%s leads no partition", r.id)
				}
				total += len(led)
			}
			if total != 4 {
				return fmt.Errorf("%d partitions led", total)
			}
			return nil
		})
	}
	spread()
	for round := range 3 {
		_, members := partitionLeaders(t, rs[0].addr)
		victim := -1
		for i, r := range rs {
			if members["ticks#0"] == r.id {
				victim = i
			}
		}
		if victim < 0 {
			t.Fatalf("round %d: no replica is reported leading ticks#0: %v", round, members)
		}
		if code := rs[victim].p.Signal(syscall.SIGKILL, exitTimeout); code != -1 {
			t.Fatalf("round %d: %s exit code %d", round, rs[victim].id, code)
		}
		t.Logf("round %d: killed %s, which led %v", round, rs[victim].id, members)
		// The others take its partitions, from where it committed them.
		var others []balanceReplica
		for i, r := range rs {
			if i != victim {
				others = append(others, r)
			}
		}
		poll.UntilNil(t, 60*time.Second, "the other replicas lead the four partitions", func() error {
			total := 0
			for _, r := range others {
				led, _ := partitionLeaders(t, r.addr)
				total += len(led)
			}
			if total != 4 {
				return fmt.Errorf("%d partitions led", total)
			}
			return nil
		})
		rs[victim] = startReplica(rs[victim].id)
		spread()
	}

	counts, last := tk.finish(t)
	for _, r := range rs {
		w := waitHTTP(t, r.addr, "ticks", last)
		if w.Position < last {
			t.Errorf("%s: wait answered at %d, before %d", r.id, w.Position, last)
		}
	}
	checkSeen(t, pool, "ticks", counts)
	checkOrder(t, pool)
	var rows int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projector_tracking WHERE projection LIKE 'ticks#%'`).Scan(&rows); err != nil || rows != 4 {
		t.Errorf("%d partition tracking rows (%v), want 4", rows, err)
	}
	statusEnv := testbin.Env("DATABASE_URL="+dbURL, "PROJECTOR_CONFIG="+cfgFile)
	code, out, errOut := runProjector(t, statusEnv, "status", "--server", "http://"+rs[0].addr)
	if code != 0 || !strings.Contains(out, "ticks") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	for _, r := range rs {
		if code := r.p.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
			t.Errorf("%s: exit code %d", r.id, code)
		}
	}
}

// ticksIn is the ticks projection in partitions partitions, with on_change onChange.
func ticksIn(partitions int, onChange string) string {
	return fmt.Sprintf("projections:\n  - name: ticks\n    partitions: %d\n    on_change: %s\n    batch: {size: 50}\n", partitions, onChange) + ticksBody
}

// checkOrder checks that every stream's events were applied in the stream's order.
func checkOrder(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) {
	t.Helper()
	var disordered int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM (
		SELECT revision, row_number() OVER (PARTITION BY stream ORDER BY seq) - 1 AS applied FROM seen_ticks) s
		WHERE revision <> applied`).Scan(&disordered); err != nil || disordered != 0 {
		t.Errorf("%d events applied out of their stream's order (%v)", disordered, err)
	}
}

// TestChangingPartitionsRebuildsTheProjection changes the partitions of a projection while
// events are appended: 1 to 4, then 4 to 2, each a new version built in a shadow schema and
// swapped in, after which the partitions start where the built version had got; on_change:
// continue refuses to adopt a change from 4 partitions. In the end every event is in the view
// once, in its stream's order.
func TestChangingPartitionsRebuildsTheProjection(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	tk := startTicker(client)
	cfgFile := writeFile(t, "projections.yaml", ticksIn(1, "rebuild"))
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile)
	run := func(file string) *testbin.Proc {
		writeFileAt(t, cfgFile, file)
		d := start(t, projectorBin, env, "run")
		healthy(t, d, addr)
		poll.Until(t, 60*time.Second, "the version of the file serves", func() bool {
			var state string
			_ = pool.QueryRow(context.Background(), `SELECT state FROM projector_versions WHERE projection = 'ticks' AND version = $1`, fingerprint(t, file)).Scan(&state)
			return state == "serving"
		})
		return d
	}
	partitionRows := func() int {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projector_tracking WHERE projection LIKE 'ticks#%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	d := run(ticksIn(1, "rebuild"))
	poll.Until(t, 30*time.Second, "ticks projected", func() bool {
		var n int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM seen_ticks`).Scan(&n)
		return n > 50
	})
	if n := partitionRows(); n != 0 {
		t.Errorf("an unpartitioned projection has %d partition rows", n)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if fingerprint(t, ticksIn(1, "rebuild")) == fingerprint(t, ticksIn(4, "rebuild")) {
		t.Fatal("the partitions are not part of the version")
	}
	d = run(ticksIn(4, "rebuild"))
	poll.Until(t, 30*time.Second, "the four partitions track", func() bool { return partitionRows() == 4 })
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}

	writeFileAt(t, cfgFile, ticksIn(2, "continue"))
	code, stdout, stderr := runProjector(t, env, "run")
	if code != 2 || !strings.Contains(stderr, "the partitions change from 4 by stream to 2 by stream, which on_change: continue cannot adopt") {
		t.Errorf("run with 4 partitions changed to 2 under on_change continue: exit %d\n%s%s", code, stdout, stderr)
	}

	d = run(ticksIn(2, "rebuild"))
	poll.Until(t, 30*time.Second, "two partitions track", func() bool { return partitionRows() == 2 })
	counts, last := tk.finish(t)
	waitHTTP(t, addr, "ticks", last)
	checkSeen(t, pool, "ticks", counts)
	checkOrder(t, pool)
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit %d", code)
	}
}
