package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// sixCounters are six projections that each record every tick event they apply, one row per
// event, so a test can tell an event applied twice or lost.
func sixCounters() string {
	var b strings.Builder
	b.WriteString("projections:\n")
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&b, `  - name: p%d
    schema: CREATE TABLE IF NOT EXISTS seen_p%d (stream text NOT NULL, revision bigint NOT NULL);
    handlers:
      "__main__:Tick.Happened": INSERT INTO seen_p%d VALUES (@stream_id, @revision)
`, i, i, i)
	}
	return b.String()
}

// ticker appends tick events to ten streams, round robin, until stopped, and keeps how many
// each stream got and the last position.
type ticker struct {
	mu     sync.Mutex
	counts map[string]int
	last   uint64
	err    error
	stop   chan struct{}
	done   chan struct{}
}

func startTicker(c *kurrentdb.Client) *ticker {
	tk := &ticker{counts: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tk.done)
		for i := 0; ; i++ {
			select {
			case <-tk.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			stream := fmt.Sprintf("tick-%d", i%10)
			r, err := c.AppendToStream(context.Background(), stream, kurrentdb.AppendToStreamOptions{},
				kurrentdb.EventData{EventID: uuid.New(), EventType: "__main__:Tick.Happened", ContentType: kurrentdb.ContentTypeBinary, Data: []byte(`{}`)})
			tk.mu.Lock()
			if err != nil {
				tk.err = err
				tk.mu.Unlock()
				return
			}
			tk.counts[stream]++
			tk.last = r.CommitPosition
			tk.mu.Unlock()
		}
	}()
	return tk
}

// finish stops appending and returns the per-stream counts and the last position.
func (tk *ticker) finish(t *testing.T) (map[string]int, uint64) {
	t.Helper()
	close(tk.stop)
	<-tk.done
	if tk.err != nil {
		t.Fatalf("append: %v", tk.err)
	}
	return tk.counts, tk.last
}

// balanceReplica is a projector daemon of the scale-out group under test.
type balanceReplica struct {
	id, addr string
	p        *testbin.Proc
}

// leaders returns which projections the replica leads, and the leader member each projection
// is reported with.
func (r balanceReplica) leaders(t *testing.T) (led []string, members map[string]string) {
	t.Helper()
	var l httpapi.ListJSON
	getJSON(t, "http://"+r.addr+"/v1/projections", &l)
	members = map[string]string{}
	for _, p := range l.Projections {
		if p.Leader {
			led = append(led, p.Name)
		}
		members[p.Name] = p.LeaderMember
	}
	return led, members
}

// settled waits until the replicas lead want projections each, and every replica names the
// same leading member for every projection, the one that leads it.
func settled(t *testing.T, timeout time.Duration, want []int, rs ...balanceReplica) {
	t.Helper()
	poll.UntilNil(t, timeout, fmt.Sprintf("the replicas lead %v projections", want), func() error {
		truth := map[string]string{}
		for i, r := range rs {
			led, _ := r.leaders(t)
			if len(led) != want[i] {
				return fmt.Errorf("%s leads %v", r.id, led)
			}
			for _, p := range led {
				truth[p] = r.id
			}
		}
		if len(truth) != 6 {
			return fmt.Errorf("%d projections led", len(truth))
		}
		for _, r := range rs {
			if _, members := r.leaders(t); !mapsEqual(members, truth) {
				return fmt.Errorf("%s reports leaders %v, want %v", r.id, members, truth)
			}
		}
		return nil
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// leaseChanges counts the leases a replica's log says it acquired or handed over.
func leaseChanges(r balanceReplica) int {
	out := r.p.Output()
	return strings.Count(out, "leadership acquired") + strings.Count(out, "leadership handed over")
}

// TestReplicasShareTheProjections runs three replicas of six projections while events are
// appended throughout: they lead two each and hold still; when one is killed the other two
// lead three each; when it comes back they share two each again; and every event is applied
// exactly once by every projection.
func TestReplicasShareTheProjections(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	cfgFile := writeFile(t, "projections.yaml", sixCounters())
	tk := startTicker(client)
	startReplica := func(id, addr string) balanceReplica {
		env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile, "PROJECTOR_MEMBER_ID="+id)
		return balanceReplica{id: id, addr: addr, p: start(t, projectorBin, env, "run")}
	}
	rs := []balanceReplica{startReplica("r1", testbin.FreeAddr(t)), startReplica("r2", testbin.FreeAddr(t)), startReplica("r3", testbin.FreeAddr(t))}
	for _, r := range rs {
		healthy(t, r.p, r.addr)
	}
	began := time.Now()
	settled(t, 30*time.Second, []int{2, 2, 2}, rs...)
	t.Logf("three replicas started together lead two projections each %v after they answered", time.Since(began))

	// Settled, nothing moves.
	before := make([]int, len(rs))
	for i, r := range rs {
		before[i] = leaseChanges(r)
	}
	time.Sleep(5 * time.Second)
	for i, r := range rs {
		if n := leaseChanges(r); n != before[i] {
			t.Errorf("%s: %d lease changes in 5 s after settling", r.id, n-before[i])
		}
		if v := metricValue(t, r.addr, "projector_members"); v != 3 {
			t.Errorf("%s: projector_members = %v, want 3", r.id, v)
		}
	}
	statusEnv := testbin.Env("DATABASE_URL="+dbURL, "PROJECTOR_CONFIG="+cfgFile)
	code, out, errOut := runProjector(t, statusEnv, "status", "--server", "http://"+rs[0].addr)
	if code != 0 || !strings.Contains(out, "LED BY") || !strings.Contains(out, "r2") || !strings.Contains(out, "r3") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	// Without a daemon to ask, status reads the leaders from the membership table.
	code, out, errOut = runProjector(t, statusEnv, "status", "--server", "http://"+testbin.FreeAddr(t))
	if led := regexp.MustCompile(`(?m)^p\d\s.*\s-\s+r[123]$`).FindAllString(out, -1); code != 0 || len(led) != 6 {
		t.Errorf("status without a daemon: exit %d, %d projections with their leader\n%s%s", code, len(led), out, errOut)
	}

	// r3 dies; r1 and r2 take its share.
	if code := rs[2].p.Signal(syscall.SIGKILL, exitTimeout); code != -1 {
		t.Fatalf("exit code %d", code)
	}
	died := time.Now()
	settled(t, 30*time.Second, []int{3, 3}, rs[:2]...)
	took := time.Since(died)
	t.Logf("the killed replica's projections were taken %v after it died", took)
	if bound := 7*time.Second + 3*time.Second; took > bound { // the stated bound, plus the polling and a loaded machine
		t.Errorf("takeover took %v, more than %v", took, bound)
	}

	// r3 comes back; the others hand its share over.
	rs[2] = startReplica("r3", testbin.FreeAddr(t))
	healthy(t, rs[2].p, rs[2].addr)
	settled(t, 30*time.Second, []int{2, 2, 2}, rs...)
	for _, r := range rs[:2] {
		out := r.p.Output()
		if !strings.Contains(out, "leadership handed over") {
			t.Errorf("%s logged no handover", r.id)
		}
		if strings.Contains(out, "leadership lost") || strings.Contains(out, `"kind":"leadership"`) {
			t.Errorf("%s logged a lost leadership or a leadership error:\n%s", r.id, out)
		}
	}

	counts, last := tk.finish(t)
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("p%d", i)
		waitHTTP(t, rs[i%3].addr, name, last)
		checkSeen(t, pool, name, counts)
	}
	for _, r := range rs {
		if code := r.p.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
			t.Errorf("%s: exit code %d", r.id, code)
		}
	}
	var members int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projector_members WHERE member_id <> 'r3'`).Scan(&members); err != nil || members != 0 {
		t.Errorf("rows of stopped members: %d, %v; want none", members, err)
	}
}

// checkSeen compares what projection recorded with what was appended: every event exactly once.
func checkSeen(t *testing.T, pool *pgxpool.Pool, projection string, counts map[string]int) {
	t.Helper()
	rows, err := pool.Query(context.Background(), fmt.Sprintf(`SELECT stream, count(*), count(DISTINCT revision), min(revision), max(revision)
		FROM seen_%s GROUP BY stream`, projection))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var streams []string
	for rows.Next() {
		var stream string
		var n, distinct, lo, hi int
		if err := rows.Scan(&stream, &n, &distinct, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, stream)
		if want := counts[stream]; n != want || distinct != want || lo != 0 || hi != want-1 {
			t.Errorf("%s: stream %s: %d rows, %d revisions %d..%d; want each of %d events once", projection, stream, n, distinct, lo, hi, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(streams) != len(counts) {
		slices.Sort(streams)
		t.Errorf("%s: streams %v, want %d", projection, streams, len(counts))
	}
}
