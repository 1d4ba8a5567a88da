package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// logLine is what the swap isolation test reads of a daemon's JSON log line.
type logLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Projection string    `json:"projection"`
	To         string    `json:"to"`
}

// timedLines parses the JSON lines of out logged at or after since.
func timedLines(t *testing.T, out string, since time.Time) []logLine {
	t.Helper()
	var lines []logLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Time.Before(since) {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// workerRestarts counts the lines of projection that tell its worker ended or (re)took its
// lease: a restart of the worker.
func workerRestarts(lines []logLine, projection string) int {
	n := 0
	for _, l := range lines {
		if l.Projection == projection && (l.Msg == "leadership acquired" || l.To == "done" || l.Msg == "leadership handed over") {
			n++
		}
	}
	return n
}

// longestGap is the longest time between two batches of projection committed within
// [from, to], and from and to themselves (so a projection that commits nothing has the whole
// window as its gap).
func longestGap(lines []logLine, projection string, from, to time.Time) time.Duration {
	prev, longest := from, time.Duration(0)
	for _, l := range lines {
		if l.Projection != projection || l.Msg != "batch committed" || l.Time.Before(from) || l.Time.After(to) {
			continue
		}
		longest = max(longest, l.Time.Sub(prev))
		prev = l.Time
	}
	return max(longest, to.Sub(prev))
}

// committing waits until each of p2 to p6 has committed 50 batches since since, on the replicas
// rs together.
func committing(t *testing.T, rs []balanceReplica, since time.Time) {
	t.Helper()
	poll.UntilNil(t, 60*time.Second, "p2 to p6 commit 50 batches each", func() error {
		batches := map[string]int{}
		for _, r := range rs {
			for _, l := range timedLines(t, r.p.Output(), since) {
				if l.Msg == "batch committed" {
					batches[l.Projection]++
				}
			}
		}
		for i := 2; i <= 6; i++ {
			if n := batches[fmt.Sprintf("p%d", i)]; n < 50 {
				return fmt.Errorf("p%d committed %d batches", i, n)
			}
		}
		return nil
	})
}

// TestSwapOfOneProjectionLeavesTheOthersRunning runs two replicas of six projections while
// events are appended throughout, and rebuilds p1 (a build starts, catches up and is swapped
// in): the other five projections keep their leaders, their workers are never restarted (no
// lease acquired or handed over, no worker ended), and they keep committing; p1 swaps as before
// and every projection applies every event exactly once.
func TestSwapOfOneProjectionLeavesTheOthersRunning(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	cfg := sixCounters()
	cfgFile := writeFile(t, "projections.yaml", cfg)
	tk := startTicker(client)
	startReplica := func(id, addr string) balanceReplica {
		env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile,
			"PROJECTOR_MEMBER_ID="+id, "PROJECTOR_ADMIN_TOKEN="+e2eToken, "PROJECTOR_LOG_LEVEL=debug")
		return balanceReplica{id: id, addr: addr, p: start(t, projectorBin, env, "run")}
	}
	rs := []balanceReplica{startReplica("r1", testbin.FreeAddr(t)), startReplica("r2", testbin.FreeAddr(t))}
	for _, r := range rs {
		healthy(t, r.p, r.addr)
	}
	settled(t, 30*time.Second, []int{3, 3}, rs...)
	_, leadersBefore := rs[0].leaders(t)
	quiet := time.Now()
	committing(t, rs, quiet) // a window without a swap, for the longest gap between batches then

	rebuilt := time.Now()
	if code, body := postJSON(t, "http://"+rs[0].addr+"/v1/projections/p1/rebuild", e2eToken, nil); code != 200 {
		t.Fatalf("rebuild p1: %d %s", code, body)
	}
	id := fingerprint(t, cfg) + "~1"
	poll.Until(t, 60*time.Second, "the rebuilt p1 serves", func() bool {
		var state string
		_ = pool.QueryRow(context.Background(), `SELECT state FROM projector_versions WHERE projection = 'p1' AND version = $1`, id).Scan(&state)
		return state == "serving"
	})
	swapped := time.Now()
	// Each replica restarts p1 twice: when its build starts, and when it is swapped in.
	poll.Until(t, 30*time.Second, "both replicas run p1's new version", func() bool {
		for _, r := range rs {
			n := 0
			for _, l := range timedLines(t, r.p.Output(), rebuilt) {
				if strings.Contains(l.Msg, "restarting the projection") {
					n++
				}
			}
			if n < 2 {
				return false
			}
		}
		return true
	})
	settled(t, 30*time.Second, []int{3, 3}, rs...)
	committing(t, rs, time.Now()) // what follows the swap, in the window measured
	ended := time.Now()
	_, leadersAfter := rs[0].leaders(t)
	var list httpapi.ListJSON
	getJSON(t, "http://"+rs[0].addr+"/v1/projections", &list)
	var order []string
	for _, p := range list.Projections {
		order = append(order, p.Name)
	}
	if want := []string{"p1", "p2", "p3", "p4", "p5", "p6"}; !slices.Equal(order, want) {
		t.Errorf("projections listed as %v after the swap, want %v", order, want)
	}

	for i := 2; i <= 6; i++ {
		name := fmt.Sprintf("p%d", i)
		restarts, quietGap, swapGap := 0, time.Duration(0), time.Duration(0)
		for _, r := range rs {
			lines := timedLines(t, r.p.Output(), quiet)
			restarts += workerRestarts(timedLines(t, r.p.Output(), rebuilt), name)
			if leadersBefore[name] == r.id {
				quietGap = longestGap(lines, name, quiet, rebuilt)
				swapGap = longestGap(lines, name, rebuilt, ended)
			}
		}
		t.Logf("%s: leader %s → %s; %d worker restarts during the rebuild and swap of p1 (%s); longest gap between its batches: %s then, %s in a quiet window before",
			name, leadersBefore[name], leadersAfter[name], restarts, ended.Sub(rebuilt).Round(time.Millisecond), swapGap.Round(time.Millisecond), quietGap.Round(time.Millisecond))
		if leadersAfter[name] != leadersBefore[name] {
			t.Errorf("%s changed leader from %s to %s while p1 was rebuilt", name, leadersBefore[name], leadersAfter[name])
		}
		if restarts != 0 {
			t.Errorf("%s's worker restarted %d times while p1 was rebuilt", name, restarts)
		}
	}
	t.Logf("p1 rebuilt and swapped in %s", swapped.Sub(rebuilt).Round(time.Millisecond))

	counts, last := tk.finish(t)
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("p%d", i)
		waitHTTP(t, rs[i%2].addr, name, last)
		checkSeen(t, pool, name, counts)
	}
	for _, r := range rs {
		if code := r.p.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
			t.Errorf("%s: exit code %d", r.id, code)
		}
	}
}
