package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// counter counts, on every connection of the pool it traces, the statements that read the
// tracking row and those that advance it (one per committed batch).
type counter struct{ reads, advances atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.TrimSpace(d.SQL), "SELECT") && strings.Contains(d.SQL, "FROM projector_tracking") {
		c.reads.Add(1)
	}
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (c *counter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	sql := strings.TrimSpace(d.SQL)
	if d.Err == nil && strings.HasPrefix(sql, "SELECT projector_advance(") {
		c.advances.Add(1)
	}
}

func (c *counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// loadFixture is a PostgreSQL store (on a traced pool) serving the HTTP wait API through the
// daemon's server, and a log of events for a ledger projection that the runner catches up.
type loadFixture struct {
	store *postgres.Store
	count *counter
	log   *projectiontest.Log
	last  uint64 // commit position of the log's last event
	addr  string
}

const loadProjection = "ledger"

func newLoadFixture(tb testing.TB, events, maxWaits int, server daemon.ServerOptions) *loadFixture {
	tb.Helper()
	schema := pgtest.NewSchema(tb)
	f := &loadFixture{count: &counter{}, log: projectiontest.NewLog()}
	cfg := pgtest.Config(tb, schema)
	cfg.ConnConfig.Tracer = f.count
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	f.store = postgres.New(pool, postgres.Options{Channel: "chan_" + schema})
	tb.Cleanup(func() { _ = f.store.Close() })
	ctx := context.Background()
	if err := f.store.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE ledger (id int NOT NULL, amount bigint NOT NULL)`); err != nil {
		tb.Fatal(err)
	}
	for i := range events {
		f.last = f.log.Append(fmt.Sprint("account-", i%7), "Deposit", []byte(strconv.Itoa(i))).Position.Commit
	}
	h := httpapi.New(httpapi.Options{Provider: daemon.NewProvider([]string{loadProjection}, nil), Waiter: f.store, MaxWaits: maxWaits})
	srv, err := daemon.Listen("127.0.0.1:0", h, server, maxWaits)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	f.addr = srv.Addr()
	return f
}

func ledgerProjection() *projection.Dispatch[pgx.Tx] {
	return projection.New[pgx.Tx](loadProjection).On("Deposit", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		return postgres.Queue(ctx, tx, `INSERT INTO ledger (id, amount) VALUES ($1::text::int, $1::text::bigint)`, string(e.Data))
	})
}

// catchUp runs a runner from the start of the log until it has committed the last event, and
// stops it.
func (f *loadFixture) catchUp(tb testing.TB, batchSize int) {
	tb.Helper()
	r := projection.NewRunner(f.log, f.store, projection.Options{})
	if err := r.Add(ledgerProjection(), projection.ProjectionOptions{BatchSize: batchSize}); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	_, err := r.Wait(wctx, loadProjection, f.last)
	wcancel()
	cancel()
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		tb.Fatalf("catch up %d: %v", f.last, err)
	}
}

// rewind empties the ledger and its tracking, so that the next catch-up starts afresh.
func (f *loadFixture) rewind(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	if _, err := f.store.Pool().Exec(ctx, `TRUNCATE ledger`); err != nil {
		tb.Fatal(err)
	}
	if err := f.store.Reset(ctx, loadProjection); err != nil {
		tb.Fatal(err)
	}
}

// waitUntil fails tb unless cond holds within limit.
func waitUntil(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %s: %s", limit, what)
		}
	}
}

// answer is what a raw HTTP client got.
type answer struct {
	code       int
	retryAfter string
	body       string
	err        error
}

// rawClients are HTTP clients with one connection and one goroutine each (net/http's client
// would start three per connection), so that thousands fit under the race detector's limit.
type rawClients struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// get sends GET path on a connection of its own and reports the answer on out.
func (c *rawClients) get(addr, path string, limit time.Duration, out chan<- answer) {
	c.wg.Go(func() {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			out <- answer{err: err}
			return
		}
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		if c.closed {
			_ = conn.Close()
		}
		c.mu.Unlock()
		_ = conn.SetDeadline(time.Now().Add(limit))
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n", path); err != nil {
			out <- answer{err: err}
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			out <- answer{err: fmt.Errorf("GET %s: %w", path, err)}
			return
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		out <- answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), err: err}
	})
}

// close cuts every connection and waits for the clients' goroutines.
func (c *rawClients) close() {
	c.mu.Lock()
	c.closed = true
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}
