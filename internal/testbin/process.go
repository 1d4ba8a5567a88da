package testbin

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/loopback"
)

// Env returns the test process's environment without the variables Projector reads
// (PROJECTOR_*, KURRENTDB_*, DATABASE_URL, OTEL_*), followed by extra ("KEY=value" each).
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PROJECTOR_") || strings.HasPrefix(k, "KURRENTDB_") || strings.HasPrefix(k, "OTEL_") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago, for a command
// to listen on: a port no outgoing connection can take meanwhile (see loopback.FreeAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return addr
}

// Proc is a command started by Start, its standard output and error captured together.
type Proc struct {
	// Name names the process in failures and logs.
	Name string
	// Cmd is the running command; its ProcessState is set once Done is closed.
	Cmd *exec.Cmd

	t    testing.TB
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// Start runs bin with args in the environment env. When t ends the process is killed if it is
// still running, and, if t has failed, the end of its output is logged.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), t: t, done: make(chan struct{})}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = (*procOutput)(p), (*procOutput)(p)
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("testbin: start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			out := p.Output()
			if len(out) > 20000 {
				out = "…" + out[len(out)-20000:]
			}
			t.Logf("output of %s:\n%s", p.Name, out)
		}
	})
	return p
}

// procOutput is the writer of a Proc's output.
type procOutput Proc

func (w *procOutput) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// Output returns what the process has written so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the result of waiting for the process; it is nil while the process runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig and waits up to timeout for the process to exit, failing the test if it does
// not. It returns the exit code, -1 when a signal ended the process.
func (p *Proc) Signal(sig syscall.Signal, timeout time.Duration) int {
	p.t.Helper()
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v of %v", p.Name, timeout, sig)
	}
	return p.Cmd.ProcessState.ExitCode()
}
