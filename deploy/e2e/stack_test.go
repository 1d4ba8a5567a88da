package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// bins holds the paths of the binaries TestMain builds.
var bins struct {
	projector, emulator, prometheus string
}

// repoRoot is the main module's directory, two levels above this package.
const repoRoot = "../.."

// databaseURL is the URL of database dbName on the tests' PostgreSQL server: the one of
// PROJECTOR_TEST_DATABASE_URL, as in the main module's tests, by default 127.0.0.1:5432.
func databaseURL(dbName string) string {
	raw := os.Getenv("PROJECTOR_TEST_DATABASE_URL")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	u, err := url.Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("PROJECTOR_TEST_DATABASE_URL %q: %v", raw, err))
	}
	u.Path = "/" + dbName
	return u.String()
}

// adminURL is the database the tests create their databases through.
var adminURL = databaseURL("postgres")

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "projector-deploy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range []struct {
		pkg string
		out *string
	}{{"./cmd/projector", &bins.projector}, {"./cmd/kurrentdb-emulator", &bins.emulator}} {
		*b.out = filepath.Join(dir, filepath.Base(b.pkg))
		// Built as the Dockerfile builds the image's binary (and so sharing its build cache).
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -X github.com/projector-dev/projector/internal/version.Version=e2e",
			"-o", *b.out, b.pkg)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	bins.prometheus, err = exec.LookPath("prometheus")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: Prometheus is not installed (Debian package prometheus; scripts/deploy-check.sh installs it):", err)
		return 1
	}
	return m.Run()
}

// proc is a running binary whose output goes to a log file shown when the test fails.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
	stopped bool // stop has run
}

func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

// stop sends SIGTERM and waits for the process, killing it after 15 seconds. The process must
// still be running, and must exit 0 on SIGTERM: that is the graceful shutdown the chart's
// termination grace period relies on.
func (p *proc) stop(t *testing.T) {
	if p.stopped {
		return
	}
	p.stopped = true
	select {
	case <-p.done:
		t.Errorf("%s exited on its own (%v) before the test stopped it", p.name, p.cmd.ProcessState)
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with code %d on SIGTERM, want 0", p.name, code)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// eventually polls f every 200ms until it returns nil or timeout passes, then fails with f's
// last error.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func httpGet(u string) (int, []byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// stack is an emulator, a fresh PostgreSQL database and a projector daemon running the
// projections of config against them.
type stack struct {
	emulatorAddr string
	emulator     *proc
	dataDir      string
	httpAddr     string
	projector    *proc
	client       *kurrentdb.Client
	env          []string
}

// startStack starts the stack; extraEnv (NAME=value) is added to the daemon's environment, not
// to the migrate step's, as the chart does with the admin token.
func startStack(t *testing.T, config string, extraEnv ...string) *stack {
	t.Helper()
	s := &stack{emulatorAddr: freeAddr(t), httpAddr: freeAddr(t), dataDir: t.TempDir()}
	s.startEmulator(t)

	dbURL := newDatabase(t)

	cfgPath := filepath.Join(t.TempDir(), "projections.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := "kurrentdb://" + s.emulatorAddr + "?tls=false"
	s.env = []string{
		"KURRENTDB_URI=" + uri,
		"DATABASE_URL=" + dbURL,
		"PROJECTOR_CONFIG=" + cfgPath,
		"PROJECTOR_HTTP_ADDR=" + s.httpAddr,
		"PROJECTOR_LOG_LEVEL=info",
		"PROJECTOR_LOG_FORMAT=json",
		"PROJECTOR_DRAIN_TIMEOUT=10s",
	}

	// As the chart does: migrate first, then run without migrating.
	mig := exec.Command(bins.projector, "migrate")
	mig.Env = append(os.Environ(), s.env...)
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("projector migrate: %v\n%s", err, out)
	}
	s.env = append(s.env, extraEnv...)
	s.projector = start(t, "projector", s.env, bins.projector, "run", "--no-migrate")
	eventually(t, 60*time.Second, "projector /healthz", func() error {
		if s.projector.exited() {
			t.Fatal("projector exited")
		}
		code, body, err := httpGet("http://" + s.httpAddr + "/healthz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})

	conf, err := kurrentdb.ParseConnectionString(uri)
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = kurrentdb.NoopLogging()
	s.client, err = kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })
	return s
}

// newDatabase creates a PostgreSQL database that is dropped when the test ends and returns its
// URL.
func newDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dbName := "projector_deploy_e2e_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", adminURL, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	return databaseURL(dbName)
}

func (s *stack) startEmulator(t *testing.T) {
	t.Helper()
	s.emulator = start(t, "kurrentdb-emulator", nil, bins.emulator, "--listen", s.emulatorAddr, "--data", s.dataDir, "--log-level", "warn")
	eventually(t, 30*time.Second, "emulator listening", func() error {
		if s.emulator.exited() {
			t.Fatal("emulator exited")
		}
		c, err := net.Dial("tcp", s.emulatorAddr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// restartEmulator stops the emulator and starts it again on the same address with the same
// data, as a KurrentDB restart does; subscriptions break and are restarted.
func (s *stack) restartEmulator(t *testing.T) {
	t.Helper()
	s.emulator.stop(t)
	s.startEmulator(t)
}

// event is one event as the Python eventsourcing package writes it.
type event struct {
	Type string
	Data map[string]any
}

// appendEvents appends events to stream and returns the commit position of the last one.
func (s *stack) appendEvents(t *testing.T, stream string, events ...event) uint64 {
	t.Helper()
	var data []kurrentdb.EventData
	for _, e := range events {
		b, err := json.Marshal(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, kurrentdb.EventData{EventID: uuid.New(), EventType: e.Type, ContentType: kurrentdb.ContentTypeBinary, Data: b})
	}
	var res *kurrentdb.WriteResult
	eventually(t, 30*time.Second, "append to "+stream, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		res, err = s.client.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, data...)
		return err
	})
	return res.CommitPosition
}

// waitProjected waits, through the daemon's wait API, until projection has processed position.
func (s *stack) waitProjected(t *testing.T, projection string, position uint64, timeout time.Duration) {
	t.Helper()
	u := fmt.Sprintf("http://%s/v1/projections/%s/wait?position=%d&timeout=5s", s.httpAddr, url.PathEscape(projection), position)
	eventually(t, timeout, fmt.Sprintf("%s processed position %d", projection, position), func() error {
		code, body, err := httpGet(u)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("wait API: status %d: %s", code, bytes.TrimSpace(body))
		}
		return err
	})
}

// metrics fetches the daemon's /metrics page.
func (s *stack) metrics(t *testing.T) []byte {
	t.Helper()
	code, body, err := httpGet("http://" + s.httpAddr + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return body
}

// dogs returns the events of a dog registered with tricks, as the training-school example
// writes them.
func dog(name string, tricks ...string) []event {
	evs := []event{{Type: "__main__:Dog.Registered", Data: map[string]any{"name": name}}}
	for _, tr := range tricks {
		evs = append(evs, event{Type: "__main__:Dog.TrickAdded", Data: map[string]any{"trick": tr}})
	}
	return evs
}
