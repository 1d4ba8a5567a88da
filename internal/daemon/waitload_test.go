package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/daemon"
)

// dribble sends the headers of a request one byte at a time and reports how the connection
// ended: nil when the server cut it off.
func dribble(ctx context.Context, addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: " + strings.Repeat("z", 1000) + "\r\n\r\n"
	buf := make([]byte, 512)
	for i := range len(req) {
		if ctx.Err() != nil {
			return fmt.Errorf("dribbling client: still connected after %d bytes", i)
		}
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			return nil // cut off
		}
		// Pace the bytes by waiting for the server to close the connection.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := conn.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil // closed (EOF or reset)
		}
	}
	return errors.New("dribbling client: the server read 1 KiB of headers sent one byte at a time to the end")
}

// neverRead sends a request, reads nothing until the server is done with it, then reports
// whether the server closed the connection (nil) rather than keeping it open.
func neverRead(addr string, done <-chan struct{}) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/projections HTTP/1.1\r\nHost: idle\r\n\r\n"); err != nil {
		return err
	}
	<-done
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("a client that never read was not cut off (it got %d bytes)", len(b))
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		return fmt.Errorf("a client that never read got %q", b)
	}
	return nil
}

// TestThousandsOfWaitsWhileTheRunnerCatchesUp is the wait API under load, on loopback and real
// PostgreSQL: 2,000 wait requests (1,000 for the last event, 800 for a position past the log,
// 200 beyond the cap of 1,800) and slow clients (headers sent byte by byte, answers never
// read) while the runner catches up 5,000 events in batches of 100. Every wait is answered
// (200, 504 at its timeout, 503 beyond the cap), the slow clients are cut off by the server's
// timeouts, and the catch-up reads the tracking row no more often with 1,800 waiters than it
// would alone.
func TestThousandsOfWaitsWhileTheRunnerCatchesUp(t *testing.T) {
	const (
		events   = 5000
		batch    = 100
		reached  = 1000
		far      = 800
		over     = 200
		maxWaits = reached + far
		slow     = 20
	)
	f := newLoadFixture(t, events, maxWaits, daemon.ServerOptions{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, IdleTimeout: time.Second})
	var clients rawClients
	defer clients.close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	slowDone := make(chan error, 2*slow)
	waitsDone := make(chan struct{})
	for range slow {
		go func() { slowDone <- dribble(ctx, f.addr) }()
		go func() { slowDone <- neverRead(f.addr, waitsDone) }()
	}

	answers := make(chan answer, maxWaits)
	for i := range maxWaits {
		if i < reached {
			clients.get(f.addr, fmt.Sprintf("/v1/projections/ledger/wait?position=%d&timeout=60s", f.last), 80*time.Second, answers)
		} else {
			clients.get(f.addr, fmt.Sprintf("/v1/projections/ledger/wait?position=%d&timeout=10s", 10*f.last), 80*time.Second, answers)
		}
	}
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d waiters blocked", maxWaits), func() bool { return f.store.Waiting(loadProjection) == maxWaits })

	refused := make(chan answer, over)
	for range over {
		clients.get(f.addr, fmt.Sprintf("/v1/projections/ledger/wait?position=%d&timeout=60s", f.last), 30*time.Second, refused)
	}
	for range over {
		if a := <-refused; a.err != nil || a.code != 503 || a.retryAfter != "1" || !strings.Contains(a.body, "waits are in progress") {
			t.Fatalf("wait beyond the cap = %d (Retry-After %q) %q %v; want 503 with Retry-After 1", a.code, a.retryAfter, a.body, a.err)
		}
	}

	reads, advances := f.count.reads.Load(), f.count.advances.Load()
	f.catchUp(t, batch)
	reads, advances = f.count.reads.Load()-reads, f.count.advances.Load()-advances

	codes := map[int]int{}
	for range maxWaits {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		codes[a.code]++
		if a.code != 200 && a.code != 504 {
			t.Errorf("wait = %d %s", a.code, a.body)
		}
	}
	if codes[200] != reached || codes[504] != far {
		t.Errorf("answers %v; want %d × 200 (reached) and %d × 504 (timed out)", codes, reached, far)
	}
	t.Logf("catch-up of %d events: %d commits, %d tracking reads with %d waiters", events, advances, reads, maxWaits)
	if advances < events/batch {
		t.Errorf("%d commits; want at least %d", advances, events/batch)
	}
	// The runner reads its tracking once to resume; the waiters none.
	if reads > 2 {
		t.Errorf("%d tracking reads during a catch-up of %d commits with %d waiters; want at most 2", reads, advances, maxWaits)
	}

	close(waitsDone)
	for range 2 * slow {
		if err := <-slowDone; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkCatchUpWithWaiters catches up 20,000 events into PostgreSQL (default batches) with
// no waiter and with 2,000 HTTP waiters for a position past the log, side by side; it reports
// the events per second and the tracking reads of each catch-up (the runner's one to resume):
//
//	go test -run '^$' -bench CatchUpWithWaiters -benchtime 1x -count 5 ./internal/daemon/
func BenchmarkCatchUpWithWaiters(b *testing.B) {
	const events = 20000
	for _, waiters := range []int{0, 2000} {
		b.Run(fmt.Sprintf("waiters=%d", waiters), func(b *testing.B) {
			f := newLoadFixture(b, events, 10000, daemon.ServerOptions{}) // the default cap
			var clients rawClients
			defer clients.close()
			answers := make(chan answer, waiters)
			for range waiters {
				clients.get(f.addr, fmt.Sprintf("/v1/projections/ledger/wait?position=%d&timeout=5m", 10*f.last), 10*time.Minute, answers)
			}
			waitUntil(b, time.Minute, fmt.Sprintf("%d waiters blocked", waiters), func() bool { return f.store.Waiting(loadProjection) == waiters })
			f.catchUp(b, 0) // warm up PostgreSQL, and let the waiters' first reads end
			var reads int64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				f.rewind(b)
				runtime.GC()
				before := f.count.reads.Load()
				b.StartTimer()
				f.catchUp(b, 0)
				b.StopTimer()
				reads += f.count.reads.Load() - before
			}
			b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(reads)/float64(b.N), "tracking-reads/op")
			if n := f.store.Waiting(loadProjection); n != waiters {
				b.Fatalf("%d waiters left blocked, want %d", n, waiters)
			}
		})
	}
}
