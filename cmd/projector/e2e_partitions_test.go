package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

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
    schema: CREATE TABLE IF NOT EXISTS seen_ticks (seq bigserial PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL);
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
	var disordered int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM (
		SELECT revision, row_number() OVER (PARTITION BY stream ORDER BY seq) - 1 AS applied FROM seen_ticks) s
		WHERE revision <> applied`).Scan(&disordered); err != nil || disordered != 0 {
		t.Errorf("%d events applied out of their stream's order (%v)", disordered, err)
	}
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
