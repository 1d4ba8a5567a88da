package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// The binaries under test, built once by TestMain.
var projectorBin, emulatorBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Build{Package: ".", Path: &projectorBin}, testbin.Build{Package: "../kurrentdb-emulator", Path: &emulatorBin})
}

// newDatabase creates a database for t, dropped when t ends, and returns its URL and a pool.
func newDatabase(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDatabase(t, "projector_e2e_")
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return url, pool
}

// startBackends starts what most end-to-end tests need: a database of their own (its URL and a
// pool) and an emulator binary on a free port (its URI and a client).
func startBackends(t testing.TB) (dbURL string, pool *pgxpool.Pool, uri string, client *kurrentdb.Client) {
	t.Helper()
	dbURL, pool = newDatabase(t)
	uri, _ = startEmulator(t, testbin.FreeAddr(t))
	return dbURL, pool, uri, kurrentClient(t, uri)
}

// exitTimeout bounds how long a stopped binary may take to exit.
const exitTimeout = 30 * time.Second

// start runs bin with args in env, named after them in failures.
func start(t testing.TB, bin string, env []string, args ...string) *testbin.Proc {
	t.Helper()
	return testbin.Start(t, filepath.Base(bin)+" "+strings.Join(args, " "), bin, env, args...)
}

// startEmulator starts the kurrentdb-emulator binary on addr (with extra flags) and returns its
// connection string.
func startEmulator(t testing.TB, addr string, extra ...string) (string, *testbin.Proc) {
	t.Helper()
	p := start(t, emulatorBin, testbin.Env(), append([]string{"--listen", addr, "--log-level", "warn"}, extra...)...)
	uri := "kurrentdb://" + addr + "?tls=false"
	poll.Until(t, 20*time.Second, "the emulator listens", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return uri, p
}

func kurrentClient(t testing.TB, uri string) *kurrentdb.Client {
	t.Helper()
	c, err := kurrent.NewClient(uri, kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// run runs the projector binary to completion and returns its exit code and output.
func runProjector(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(projectorBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		<-ctx.Done()
		if cmd.Process != nil && ctx.Err() == context.DeadlineExceeded {
			_ = cmd.Process.Kill()
		}
	}()
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("projector %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	code, b := httpGet(t, url)
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("GET %s: %d %s: %v", url, code, b, err)
	}
	return code
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// healthy waits until the daemon at addr answers /healthz.
func healthy(t testing.TB, p *testbin.Proc, addr string) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the daemon answers /healthz", func() bool {
		if p.Exited() {
			t.Fatalf("projector exited: %v\n%s", p.Err(), p.Output())
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
