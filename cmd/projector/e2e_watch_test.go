package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// The row of the projection "slow" in a terminal frame of status --watch while it catches up:
// events/s, ETA and the progress bar.
var watchTableRow = regexp.MustCompile(`slow +catching_up +\d+ +\d+ +\d+ +(\d+) +(\S+) +\[(#*-*)\] +([\d.]+)%`)

// A line of status --watch when stdout is not a terminal, while "slow" catches up.
var watchLine = regexp.MustCompile(`(?m)^\S+ slow state=catching_up position=\d+ head=\d+ lag=\d+ events/s=(\d+) eta=(\S+) progress=([\d.]+)%$`)

// TestStatusWatch runs projector status --watch against a daemon catching up on a slow
// projection: under a pseudo-terminal it redraws the table in place with ANSI escape codes,
// with events/s, an ETA and a progress bar; into a pipe it prints a line per projection and
// second. Both end with exit 0 on Ctrl-C (SIGINT).
func TestStatusWatch(t *testing.T) {
	t.Parallel()
	dbURL, _, uri, client := startBackends(t)
	school := trainingschool.NewSchool(client)
	ctx := context.Background()
	for i := range 600 {
		if _, err := school.Register(ctx, fmt.Sprintf("dog-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeFile(t, "p.yaml", `projections:
  - name: slow
    batch: {size: 20, interval: 1s}
    schema: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY);
    handlers:
      "__main__:Dog.Registered": |
        INSERT INTO seen VALUES (@commit_position);
        SELECT pg_sleep(0.02);
`)
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfg)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	poll.Until(t, 30*time.Second, "the daemon has committed a batch", func() bool {
		var l httpapi.ListJSON
		return getJSON(t, "http://"+addr+"/v1/projections", &l) == 200 && len(l.Projections) == 1 && l.Projections[0].Position > 0
	})

	// Under a pseudo-terminal.
	cmd := exec.Command(projectorBin, "status", "--watch")
	cmd.Env = testbin.Env("DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfg)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 140})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var screen lockedBuffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&screen, tty); close(copied) }() // ends with EIO once the command exits
	// Into a pipe.
	lines := start(t, projectorBin, cmd.Env, "status", "--watch")

	var row []string
	poll.Until(t, 30*time.Second, "status --watch draws a catching-up row with events/s and an ETA", func() bool {
		frames := strings.Split(screen.String(), ansiHome)
		for _, f := range frames[1:] {
			if m := watchTableRow.FindStringSubmatch(f); m != nil && m[1] != "0" && m[2] != "-" {
				row = m
				return true
			}
		}
		return false
	})
	if eta, err := time.ParseDuration(row[2]); err != nil || eta <= 0 {
		t.Errorf("ETA %q: %v", row[2], err)
	}
	if pct, _ := strconv.ParseFloat(row[4], 64); pct <= 0 || pct >= 100 || !strings.Contains(row[3], "#") || !strings.Contains(row[3], "-") {
		t.Errorf("progress bar [%s] %s%% of a projection catching up", row[3], row[4])
	}
	var line []string
	poll.Until(t, 30*time.Second, "status --watch prints a catching-up line with events/s and an ETA", func() bool {
		for _, m := range watchLine.FindAllStringSubmatch(lines.Output(), -1) {
			if m[1] != "0" && m[2] != "-" {
				line = m
				return true
			}
		}
		return false
	})
	if _, err := time.ParseDuration(line[2]); err != nil {
		t.Errorf("ETA %q in %q: %v", line[2], line[0], err)
	}

	_ = cmd.Process.Signal(os.Interrupt)
	werr := cmd.Wait()
	<-copied
	if werr != nil {
		t.Errorf("status --watch on a terminal after Ctrl-C: %v", werr)
	}
	out := screen.String()
	for _, code := range []string{ansiHideCursor, ansiClear, ansiClearLine, ansiClearBelow} {
		if !strings.Contains(out, code) {
			t.Errorf("the terminal output has no %q", code)
		}
	}
	if n := strings.Count(out, ansiHome); n < 2 {
		t.Errorf("the table was drawn %d times, want redraws", n)
	}
	if !strings.HasSuffix(out, ansiShowCursor) {
		t.Errorf("the terminal output does not end by showing the cursor: %q", out[max(len(out)-40, 0):])
	}
	if code := lines.Signal(syscall.SIGINT, exitTimeout); code != 0 {
		t.Errorf("status --watch into a pipe after SIGINT: exit %d", code)
	}
	if strings.Contains(lines.Output(), "\x1b[") {
		t.Errorf("the output into a pipe has escape codes:\n%q", lines.Output())
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
