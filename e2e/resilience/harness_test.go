package resilience_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/internal/faultproxy"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// The binaries under test, built once by TestMain.
var projectorBin, emulatorBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Build{Package: "../../cmd/projector", Path: &projectorBin},
		testbin.Build{Package: "../../cmd/kurrentdb-emulator", Path: &emulatorBin})
}

// testAppName marks the suite's own PostgreSQL sessions, so faults spare them.
const testAppName = "projector-resilience-test"

// database is a PostgreSQL database of one test.
type database struct {
	url  string // for the projector
	host string // host:port of the server
	pool *pgxpool.Pool
}

// newDatabase creates a database for t, dropped (with force) when t ends.
func newDatabase(t *testing.T) *database {
	t.Helper()
	db := &database{url: pgtest.NewDatabase(t, "projector_res_")}
	pcfg, err := pgxpool.ParseConfig(db.url)
	if err != nil {
		t.Fatal(err)
	}
	db.host = net.JoinHostPort(pcfg.ConnConfig.Host, strconv.Itoa(int(pcfg.ConnConfig.Port)))
	pcfg.ConnConfig.RuntimeParams["application_name"] = testAppName
	db.pool, err = pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.pool.Close)
	return db
}

// urlVia is the database's URL with the server address replaced by addr (a fault proxy).
func (db *database) urlVia(addr string) string {
	u, err := url.Parse(db.url)
	if err != nil {
		panic(err) // pgtest.NewDatabase made it with url.URL.String
	}
	u.Host = addr
	return u.String()
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

// startEmulator starts an in-process emulator (for its fault hooks) on a free port and
// connects a client to it.
func startEmulator(t *testing.T) (*emulator.Server, *kurrentdb.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, kurrentClient(t, srv.URI())
}

// newProxy starts a fault proxy to target, closed when t ends.
func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	proxy, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	return proxy
}

// proc is a started binary with its output captured.
type proc struct{ *testbin.Proc }

// start runs bin; it is killed when t ends if still running, and its output is logged when t
// has failed.
func start(t *testing.T, name, bin string, environ []string, args ...string) proc {
	t.Helper()
	return proc{testbin.Start(t, name, bin, environ, args...)}
}

// ready waits up to d until up holds, failing t at once if p exits first.
func (p proc) ready(t *testing.T, d time.Duration, what string, up func() bool) {
	t.Helper()
	poll.Until(t, d, what, func() bool {
		if p.Exited() {
			t.Fatalf("%s exited:\n%s", p.Name, p.Output())
		}
		return up()
	})
}

// startEmulatorBinary runs the emulator binary on addr with its log in dataDir.
func startEmulatorBinary(t *testing.T, addr, dataDir string) proc {
	t.Helper()
	p := start(t, "kurrentdb-emulator", emulatorBin, testbin.Env(), "--listen", addr, "--data", dataDir, "--log-level", "warn")
	p.ready(t, 20*time.Second, "the emulator listens on "+addr, func() bool {
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
	proc
	http string // host:port of its HTTP API
}

// adminToken is the admin token of the daemons, which their commands require.
const adminToken = "resilience-admin-token"

// startDaemon runs `projector run` with the projections file configFile.
func startDaemon(t *testing.T, name, dbURL, kurrentURI, configFile string) *daemon {
	t.Helper()
	addr := testbin.FreeAddr(t)
	p := start(t, name, projectorBin, testbin.Env(
		"DATABASE_URL="+dbURL, "KURRENTDB_URI="+kurrentURI, "PROJECTOR_HTTP_ADDR="+addr,
		"PROJECTOR_LOG_FORMAT=json", "PROJECTOR_LOG_LEVEL=info", "PROJECTOR_ADMIN_TOKEN="+adminToken,
	), "run", "--config", configFile)
	d := &daemon{proc: p, http: addr}
	p.ready(t, 30*time.Second, name+" answers /healthz", func() bool {
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
		t.Fatalf("GET /metrics of %s: %v", d.Name, err)
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

// ledgerErrors returns the sum of the daemon's projector_errors_total of the ledger over kinds.
func (d *daemon) ledgerErrors(t *testing.T, kinds ...string) float64 {
	t.Helper()
	var n float64
	for _, k := range kinds {
		n += d.metric(t, `projector_errors_total{kind="`+k+`",projection="ledger"}`)
	}
	return n
}

// logLines returns the daemon's JSON log lines whose message is msg.
func (p proc) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Output(), "\n") {
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

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
