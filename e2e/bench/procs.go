package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binaries are the paths of the commands the benchmark runs.
type Binaries struct {
	Projector string
	Emulator  string
	// DaemonEnv is added to the environment of every `projector run` (KEY=VALUE), after the
	// variables the benchmark sets itself.
	DaemonEnv []string
	// PostgresVia, when not empty, is the host:port `projector run` reaches PostgreSQL through
	// (see Options.PGLatency).
	PostgresVia string
}

// BuildBinaries builds cmd/projector and cmd/kurrentdb-emulator of the module in the current
// directory into dir.
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Projector: filepath.Join(dir, "projector"), Emulator: filepath.Join(dir, "kurrentdb-emulator")}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+string(filepath.Separator), "./cmd/projector", "./cmd/kurrentdb-emulator")
	if out, err := cmd.CombinedOutput(); err != nil {
		return b, fmt.Errorf("build the binaries (run from the module's root): %w\n%s", err, out)
	}
	return b, nil
}

// BinariesIn returns the binaries of dir (as make build leaves them in bin/), checking that
// they exist.
func BinariesIn(dir string) (Binaries, error) {
	b := Binaries{Projector: filepath.Join(dir, "projector"), Emulator: filepath.Join(dir, "kurrentdb-emulator")}
	for _, p := range []string{b.Projector, b.Emulator} {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("binary: %w (run make build, or leave -bin empty to build them)", err)
		}
	}
	return b, nil
}

// Proc is a started command whose output is kept in memory.
type Proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// Start starts bin with args and the environment env.
func Start(name, bin string, env []string, args ...string) (*Proc, error) {
	p := &Proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = (*procOutput)(p), (*procOutput)(p)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

type procOutput Proc

func (w *procOutput) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// Tail returns the last n bytes of the process's output.
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.out.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// Exited returns an error describing the process's end if it has ended, nil while it runs.
func (p *Proc) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its output:\n%s", p.name, p.err, p.Tail(4000))
	default:
		return nil
	}
}

// Usage is what the kernel accounted to an ended process.
type Usage struct {
	CPU     time.Duration // user + system time
	PeakRSS int64         // bytes
}

// Stop sends SIGTERM, waits up to timeout for the process to end, and returns its usage. An
// exit status other than 0 is an error.
//
// The peak RSS is the process's VmHWM, read just before the SIGTERM, where /proc has it: the
// rusage maximum of a child counts the memory of the parent it was forked from, which the
// benchmark's replayed events make large. Without /proc it is the rusage maximum.
func (p *Proc) Stop(timeout time.Duration) (Usage, error) {
	hwm := peakRSS(p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return Usage{}, fmt.Errorf("%s did not exit within %v of SIGTERM; its output:\n%s", p.name, timeout, p.Tail(4000))
	}
	st := p.cmd.ProcessState
	u := Usage{CPU: st.UserTime() + st.SystemTime()}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		u.PeakRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	if hwm > 0 {
		u.PeakRSS = hwm
	}
	if code := st.ExitCode(); code != 0 {
		return u, fmt.Errorf("%s exited with status %d after SIGTERM; its output:\n%s", p.name, code, p.Tail(4000))
	}
	return u, nil
}

// peakRSS returns the VmHWM of process pid in bytes, 0 when unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return ParseStatusKB(string(b), "VmHWM")
}

// CPU returns the user and system time the running process has used so far (from
// /proc/PID/stat, in clock ticks of 10 ms); 0 where /proc does not have it.
func (p *Proc) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return ParseStatCPU(string(b))
}

// ParseStatCPU returns utime + stime of a /proc/PID/stat line, counted in ticks of 10 ms (Linux's
// USER_HZ); 0 when the line has no such fields.
func ParseStatCPU(stat string) time.Duration {
	// The command name, in parentheses, may hold spaces: the fields follow its last ")".
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 { // state is field 3 of the line, utime 14, stime 15
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Kill ends the process at once if it still runs; for cleanup.
func (p *Proc) Kill() {
	if p.Exited() == nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Env returns this process's environment without the variables Projector reads, followed by
// extra ("KEY=value" each).
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PROJECTOR_") || strings.HasPrefix(k, "KURRENTDB_") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// waitListening waits until addr accepts TCP connections, or p ends, or timeout passes.
func waitListening(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if perr := p.Exited(); perr != nil {
			return perr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s within %v: %w", p.name, addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
