package main

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// kennel is a projection whose every event takes 10 ms, so that building it again lasts a few
// seconds.
const kennel = `projections:
  - name: kennel
    batch: {size: 20}
    schema: CREATE TABLE IF NOT EXISTS kennel (id text PRIMARY KEY);
    handlers:
      "__main__:Dog.Registered": |
        INSERT INTO kennel VALUES (@stream_id);
        SELECT pg_sleep(0.01);
`

// TestRebuildWatch runs projector rebuild --watch against a daemon: under a pseudo-terminal it
// redraws the table in place, with the version building's row (events/s and a progress bar
// towards the serving position), and ends, exit 0, with a line saying the version was swapped
// in; meanwhile status --watch into a pipe prints the building version's line. Into a pipe,
// a second rebuild --watch prints a line per second and the same last line, with no escape code;
// a third, abandoned while watched, ends with exit 1.
func TestRebuildWatch(t *testing.T) {
	t.Parallel()
	dbURL, _, uri, client := startBackends(t)
	last := appendDogs(t, client, 0, 400, 0)
	cfg := writeFile(t, "p.yaml", kennel)
	id := fingerprint(t, kennel)
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfg)
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	waitHTTP(t, addr, "kennel", last)
	cliEnv := testbin.Env("DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfg)

	// Under a pseudo-terminal.
	status := start(t, projectorBin, cliEnv, "status", "--watch")
	cmd := exec.Command(projectorBin, "rebuild", "kennel", "--watch")
	cmd.Env = cliEnv
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var screen lockedBuffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&screen, tty); close(copied) }() // ends with EIO once the command exits
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rebuild --watch on a terminal: %v\n%q", err, screen.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("rebuild --watch has not ended 90s on:\n%q", screen.String())
	}
	<-copied
	out := screen.String()
	row := regexp.MustCompile(`kennel@` + regexp.QuoteMeta(id) + `~1 +building +\d+ +\d+ +\d+ +(\S+) +(\S+) +\[(#*-*)\] +([\d.]+)%`)
	var bar []string
	for _, f := range strings.Split(out, ansiHome)[1:] {
		if m := row.FindStringSubmatch(f); m != nil && m[1] != "-" && m[1] != "0" && strings.Contains(m[3], "-") {
			bar = m
			break
		}
	}
	if bar == nil {
		t.Fatalf("no frame has the building version's row with events/s and a bar not yet full:\n%q", out)
	}
	if eps, err := strconv.ParseFloat(bar[1], 64); err != nil || eps <= 0 {
		t.Errorf("events/s %q: %v", bar[1], err)
	}
	if pct, _ := strconv.ParseFloat(bar[4], 64); pct >= 100 {
		t.Errorf("progress %s%% before the swap", bar[4])
	}
	swapped := regexp.MustCompile(regexp.QuoteMeta(ansiShowCursor) + `swapped in version ` + regexp.QuoteMeta(id) + `~1 of kennel at position (\d+)\r?\n$`)
	if m := swapped.FindStringSubmatch(out); m == nil {
		t.Errorf("the terminal output does not end by showing the cursor and saying the version was swapped in: %q", out[max(len(out)-200, 0):])
	} else if pos, _ := strconv.ParseUint(m[1], 10, 64); pos < last {
		t.Errorf("swapped in at position %d, before the last event %d", pos, last)
	}
	if n := strings.Count(out, ansiHome); n < 2 {
		t.Errorf("the table was drawn %d times, want redraws", n)
	}
	building := regexp.MustCompile(`(?m)^\S+ kennel@` + regexp.QuoteMeta(id) + `~1 state=building position=\d+ head=\d+ lag=\d+ events/s=\S+ eta=\S+ progress=[\d.]+%$`)
	if code := status.Signal(syscall.SIGINT, exitTimeout); code != 0 || !building.MatchString(status.Output()) {
		t.Errorf("status --watch during the build: exit %d, no line of the building version:\n%s", code, status.Output())
	}

	// Into a pipe.
	code, stdout, stderr := runProjector(t, cliEnv, "rebuild", "kennel", "--watch")
	if code != 0 {
		t.Fatalf("rebuild --watch into a pipe: exit %d: %s %s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Errorf("the output into a pipe has escape codes:\n%q", stdout)
	}
	line := fmt.Sprintf(`(?m)^\S+ kennel@%s~2 state=building position=\d+ head=\d+ lag=\d+ events/s=\S+ eta=\S+ progress=[\d.]+%%$`, regexp.QuoteMeta(id))
	swappedLine := `swapped in version ` + regexp.QuoteMeta(id) + `~2 of kennel at position \d+\n$`
	if !regexp.MustCompile(line).MatchString(stdout) || !regexp.MustCompile(swappedLine).MatchString(stdout) {
		t.Errorf("rebuild --watch into a pipe: no line of the building version, or no last line saying it was swapped in:\n%s", stdout)
	}

	// A build abandoned while it is watched ends the watch with exit 1, naming the version.
	watch := start(t, projectorBin, cliEnv, "rebuild", "kennel", "--watch")
	poll.Until(t, 30*time.Second, "rebuild --watch draws the third build", func() bool { return strings.Contains(watch.Output(), "kennel@"+id+"~3 state=building") })
	if code, stdout, stderr := runProjector(t, cliEnv, "rebuild", "--cancel", "kennel"); code != 0 || !strings.Contains(stdout, "abandoned version "+id+"~3") {
		t.Fatalf("rebuild --cancel: exit %d: %s %s", code, stdout, stderr)
	}
	poll.Until(t, 10*time.Second, "rebuild --watch ends", watch.Exited)
	var ee *exec.ExitError
	if err := watch.Err(); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(watch.Output(), "version "+id+"~3 is no longer building") {
		t.Errorf("rebuild --watch of an abandoned build: %v\n%s", err, watch.Output())
	}
	if code, _, stderr := runProjector(t, cliEnv, "rebuild", "--watch", "--cancel", "kennel"); code != 2 || !strings.Contains(stderr, "--watch and --cancel cannot be combined") {
		t.Errorf("rebuild --watch --cancel: exit %d: %s", code, stderr)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
