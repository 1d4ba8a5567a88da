package trainingschool_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
)

// A child process is killed (SIGKILL) between its handlers and the commit, twice, then
// restarted: every count is exact, and the cross-process Wait sees the final position.
func TestCrashBetweenHandlerAndCommitIsExactlyOnce(t *testing.T) {
	e := newEnv(t)
	last := e.fill(t, "dog ", 30, 9) // 300 events
	all := e.positions(t)
	if len(all) != 300 || all[299] != last {
		t.Fatalf("%d events in $all, last at %d; want 300, last at %d", len(all), all[len(all)-1], last)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kill := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	start := func(blockAfter int) (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=1", envURI+"="+e.srv.URI(), envSchema+"="+e.schema, envBlockAfter+"="+strconv.Itoa(blockAfter))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kill(cmd) }) // no child outlives the test, whatever happens
		return cmd, bufio.NewScanner(out)
	}
	expect := func(line string, sc *bufio.Scanner) {
		got := make(chan bool, 1)
		go func() {
			for sc.Scan() {
				if sc.Text() == line {
					got <- true
					return
				}
			}
			got <- false
		}()
		select {
		case ok := <-got:
			if !ok {
				t.Fatalf("child ended before printing %s", line)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("child did not print %s within 30s", line)
		}
	}
	consistent := func(round int) tracking.State {
		s, _, err := e.store.Load(context.Background(), trainingschool.ProjectionName)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, p := range all {
			if s.Done(p) {
				done++
			}
		}
		dogs, tricks := e.counts(t)
		var rows int64
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM trainingschool_dogs`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if dogs+tricks != int64(done) || rows != dogs {
			t.Fatalf("round %d: tracking %v covers %d events, but the view counts %d dogs (%d rows) and %d tricks", round, s, done, dogs, rows, tricks)
		}
		t.Logf("round %d: killed with %d of 300 events committed", round, done)
		return s
	}

	cmd, out := start(137)
	expect("BLOCKED", out)
	kill(cmd)
	s1 := consistent(1)
	if s1.Done(all[136]) {
		t.Fatalf("the blocked event at %d was committed (%v)", all[136], s1)
	}

	cmd, out = start(60)
	expect("BLOCKED", out)
	kill(cmd)
	s2 := consistent(2)
	if s2.Last.Compare(s1.Last) < 0 {
		t.Fatalf("tracking went back from %v to %v", s1, s2)
	}

	_, out = start(0)
	expect("RUNNING", out)
	waitFor(t, e.newStore(t), last) // another process's progress, seen through PostgreSQL alone
	if dogs, tricks := e.counts(t); dogs != 30 || tricks != 270 {
		t.Fatalf("after the crashes: %d dogs, %d tricks; want exactly 30, 270", dogs, tricks)
	}
	var bad int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM trainingschool_dogs WHERE cardinality(tricks) <> 9`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d dogs without exactly 9 tricks (%v)", bad, err)
	}
}

func TestTwoRunnersOnOneProjectionNeverDoubleApply(t *testing.T) {
	e := newEnv(t)
	e.fill(t, "dog ", 20, 9)
	var runners []*projection.Runner[pgx.Tx]
	for range 2 {
		r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), e.newStore(t), projection.Options{})
		if err := r.Add(trainingschool.PostgresCounts(), projection.ProjectionOptions{BatchSize: 25}); err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		run(t, r)
	}
	last := e.fill(t, "late dog ", 10, 9)
	waitFor(t, e.store, last)
	if dogs, tricks := e.counts(t); dogs != 30 || tricks != 270 {
		t.Fatalf("counts = %d dogs, %d tricks; want exactly 30, 270", dogs, tricks)
	}
	poll.UntilNil(t, 10*time.Second, "exactly one runner is stopped by a tracking conflict", func() error {
		a, b := runners[0].Status()[0].State, runners[1].Status()[0].State
		if (a == projection.StateStopped) == (b == projection.StateStopped) {
			return fmt.Errorf("states %s and %s", a, b)
		}
		return nil
	})
}
