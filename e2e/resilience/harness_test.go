package resilience_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/emulator"
)

// The binaries under test, built once by TestMain.
var projectorBin, emulatorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "projector-resilience-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	projectorBin = filepath.Join(dir, "projector")
	emulatorBin = filepath.Join(dir, "kurrentdb-emulator")
	for bin, pkg := range map[string]string{projectorBin: "../../cmd/projector", emulatorBin: "../../cmd/kurrentdb-emulator"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testAppName marks the suite's own PostgreSQL sessions, so faults spare them.
const testAppName = "projector-resilience-test"

// adminURL is the PostgreSQL server the suite creates its databases on.
func adminURL() string {
	if u := os.Getenv("PROJECTOR_TEST_ADMIN_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// database is a PostgreSQL database of one test.
type database struct {
	name string
	url  string // for the projector
	host string // host:port of the server
	pool *pgxpool.Pool
}

// newDatabase creates a database for t, dropped (with force) when t ends.
func newDatabase(t *testing.T) *database {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(adminURL())
	if err != nil {
		t.Fatal(err)
	}
	ac, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		t.Fatalf("PostgreSQL for the resilience suite at %s: %v", adminURL(), err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "projector_res_" + hex.EncodeToString(b)
	if _, err := ac.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	host := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	db := &database{name: name, host: host, url: fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, host, name)}
	pcfg, err := pgxpool.ParseConfig(db.url)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = testAppName
	db.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.pool.Close()
		if _, err := ac.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		_ = ac.Close(ctx)
	})
	return db
}

// urlVia is the database's URL with the server address replaced by addr (a fault proxy).
func (db *database) urlVia(addr string) string {
	return strings.Replace(db.url, "@"+db.host+"/", "@"+addr+"/", 1)
}

// killBackends terminates every session on the database except the suite's own, as an
// operator or a failover would, and returns how many it killed.
func (db *database) killBackends(t *testing.T) int {
	t.Helper()
	var n int
	err := db.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND application_name <> $1`, testAppName).Scan(&n)
	if err != nil {
		t.Fatalf("kill backends: %v", err)
	}
	return n
}

// startEmulator starts an in-process emulator (for its fault hooks) on a free port.
func startEmulator(t *testing.T) *emulator.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// proc is a started binary with its output captured.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// env is the test process's environment without the variables Projector reads, plus extra.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PROJECTOR_") || strings.HasPrefix(k, "KURRENTDB_") || k == "DATABASE_URL" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// start runs bin; it is killed when t ends if still running, and its output is logged when t
// has failed.
func start(t *testing.T, name, bin string, environ []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			out := p.output()
			if len(out) > 20000 {
				out = "…" + out[len(out)-20000:]
			}
			t.Logf("output of %s:\n%s", p.name, out)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits up to timeout for the exit; it returns the exit code (-1 when
// killed by a signal).
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v of %v", p.name, timeout, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// startEmulatorBinary runs the emulator binary on addr with its log in dataDir.
func startEmulatorBinary(t *testing.T, addr, dataDir string) *proc {
	t.Helper()
	p := start(t, "kurrentdb-emulator", emulatorBin, env(), "--listen", addr, "--data", dataDir, "--log-level", "warn")
	eventually(t, 20*time.Second, "the emulator listens on "+addr, func() bool {
		if p.exited() {
			t.Fatalf("emulator exited:\n%s", p.output())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return p
}

// daemon is a running projector.
type daemon struct {
	*proc
	http string // host:port of its HTTP API
}

// startDaemon runs `projector run` with the projections file configFile.
func startDaemon(t *testing.T, name, dbURL, kurrentURI, configFile string) *daemon {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, name, projectorBin, env(
		"DATABASE_URL="+dbURL, "KURRENTDB_URI="+kurrentURI, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_LOG_FORMAT=json", "PROJECTOR_LOG_LEVEL=info",
	), "run", "--config", configFile)
	d := &daemon{proc: p, http: addr}
	eventually(t, 30*time.Second, name+" answers /healthz", func() bool {
		if p.exited() {
			t.Fatalf("%s exited:\n%s", name, p.output())
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// projectionStatus is the part of /v1/projections the suite reads.
type projectionStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Leader   bool   `json:"leader"`
	Position uint64 `json:"position"`
	Failed   *struct {
		Position struct {
			Commit uint64 `json:"commit"`
		} `json:"position"`
		EventID string `json:"event_id"`
		Type    string `json:"type"`
		Stream  string `json:"stream"`
		Error   string `json:"error"`
	} `json:"failed"`
}

// status returns the daemon's view of projection, or ok false when the daemon does not answer.
func (d *daemon) status(projection string) (projectionStatus, bool) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + d.http + "/v1/projections/" + projection)
	if err != nil {
		return projectionStatus{}, false
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var s projectionStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &s) != nil {
		return projectionStatus{}, false
	}
	return s, true
}

// metric returns the value of one series of the daemon's /metrics (0 when absent).
func (d *daemon) metric(t *testing.T, series string) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics of %s: %v", d.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("metric %s = %q: %v", series, m[1], err)
	}
	return v
}

// logLines returns the daemon's JSON log lines whose message is msg.
func (p *proc) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// eventually polls cond every 50ms until it holds, failing t after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
