package faultproxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/projector-dev/projector/internal/faultproxy"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection until closed; its goroutines end with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads it back, within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) ([]byte, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	if werr := <-errc; err == nil {
		err = werr
	}
	return got, err
}

func TestForwardsBytesIntactBothWays(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	msg := make([]byte, 4<<20)
	_, _ = rand.Read(msg)
	var wg sync.WaitGroup
	for i := range 4 {
		c := dial(t, p.Addr())
		wg.Go(func() {
			got, err := roundTrip(c, msg, 20*time.Second)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("connection %d: %d bytes back, equal=%v, err %v", i, len(got), bytes.Equal(got, msg), err)
			}
		})
	}
	wg.Wait()
	if got := p.Accepted(); got != 4 {
		t.Errorf("Accepted = %d, want 4", got)
	}
	if got := p.Active(); got != 4 {
		t.Errorf("Active = %d, want 4 open connections", got)
	}
}

func TestCutAllClosesEveryConnectionAndAcceptsNewOnes(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	for _, c := range []net.Conn{a, b} {
		if _, err := roundTrip(c, []byte("hello"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.CutAll(); n != 2 {
		t.Errorf("CutAll = %d, want 2", n)
	}
	for i, c := range []net.Conn{a, b} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("connection %d after CutAll: read error %v, want the connection closed", i, err)
		}
	}
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, []byte("again"), 5*time.Second); err != nil || string(got) != "again" {
		t.Errorf("new connection after CutAll: %q, %v", got, err)
	}
}

func TestPauseHoldsBytesUntilResume(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	open := dial(t, p.Addr())
	if _, err := roundTrip(open, []byte("warm"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Pause()
	p.Pause() // idempotent
	fresh := dial(t, p.Addr())
	for i, c := range []net.Conn{open, fresh} {
		if _, err := roundTrip(c, []byte("held"), 300*time.Millisecond); err == nil {
			t.Fatalf("connection %d: bytes went through while paused", i)
		}
	}
	p.Resume()
	for i, c := range []net.Conn{open, fresh} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
			t.Errorf("connection %d after Resume: %q, %v; want the held bytes", i, got, err)
		}
	}
	p.Resume() // idempotent
	if got, err := roundTrip(fresh, []byte("flowing"), 5*time.Second); err != nil || string(got) != "flowing" {
		t.Errorf("after Resume: %q, %v", got, err)
	}
}

func TestLatencyDelaysEachDirection(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	const d = 150 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	if got, err := roundTrip(c, []byte("slow"), 10*time.Second); err != nil || string(got) != "slow" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if took := time.Since(start); took < 2*d {
		t.Errorf("round trip under latency %v took %v, want at least %v (both directions)", d, took, 2*d)
	}
	p.SetLatency(0)
	if got, err := roundTrip(c, []byte("fast"), 10*time.Second); err != nil || string(got) != "fast" {
		t.Fatalf("round trip without latency: %q, %v", got, err)
	}
}

func TestRefusingClosesNewConnectionsOnly(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	old := dial(t, p.Addr())
	if _, err := roundTrip(old, []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetRefusing(true)
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("refused connection read %d bytes", n)
	}
	if _, err := roundTrip(old, []byte("y"), 5*time.Second); err != nil {
		t.Errorf("open connection while refusing: %v", err)
	}
	p.SetRefusing(false)
	if _, err := roundTrip(dial(t, p.Addr()), []byte("z"), 5*time.Second); err != nil {
		t.Errorf("after refusing ends: %v", err)
	}
}

func TestUnreachableTargetClosesTheClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	p := newProxy(t, target)
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("read through a proxy to a closed port: %v, want the connection closed", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	p, err := faultproxy.New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Pause()
	dial(t, p.Addr()) // waits for Resume inside the proxy
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if p.Active() != 0 {
		t.Errorf("Active after Close = %d", p.Active())
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Error("proxy still accepts after Close")
	}
}

func TestBadTarget(t *testing.T) {
	if _, err := faultproxy.New("no-port"); err == nil {
		t.Error("New with a target without a port succeeded")
	}
}

// TestPostgreSQLThroughTheProxy runs queries through the proxy and cuts them off, the way the
// resilience tests use it.
func TestPostgreSQLThroughTheProxy(t *testing.T) {
	t.Parallel()
	p := newProxy(t, pgtest.Addr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := proxiedURL(t, p.Addr())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	if err := conn.QueryRow(ctx, `SELECT 42`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("query through the proxy: %d, %v", n, err)
	}
	p.CutAll()
	if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&n); err == nil {
		t.Fatal("query on a cut connection succeeded")
	}
	conn2, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("reconnect after CutAll: %v", err)
	}
	defer func() { _ = conn2.Close(context.Background()) }()
	p.Pause()
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = conn2.QueryRow(qctx, `SELECT 1`).Scan(&n)
	qcancel()
	if err == nil {
		t.Fatal("query through a paused proxy succeeded")
	}
	p.Resume()
}

func BenchmarkThroughput(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		_, _ = io.Copy(io.Discard, c)
	}()
	p, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	<-done
}

// proxiedURL is the tests' PostgreSQL URL (its postgres database) with the server at addr.
func proxiedURL(t *testing.T, addr string) string {
	t.Helper()
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}
