package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// trackingReads counts the statements that read projector_tracking, on every connection of
// the pool it traces (the LISTEN connection included).
type trackingReads struct{ n atomic.Int64 }

func (c *trackingReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.TrimSpace(d.SQL), "SELECT") && strings.Contains(d.SQL, "FROM projector_tracking") {
		c.n.Add(1)
	}
	return ctx
}

func (c *trackingReads) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countedStore returns a migrated store on a schema of its own whose tracking reads are
// counted, and a second store on the same schema that writes as another process would.
func countedStore(t *testing.T) (reader *Store, writer *Store, reads *trackingReads) {
	t.Helper()
	schema := pgtest.NewSchema(t)
	reads = &trackingReads{}
	cfg := pgtest.Config(t, schema)
	cfg.ConnConfig.Tracer = reads
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	channel := "chan_" + schema
	reader = New(pool, Options{Channel: channel, ListenRetry: 50 * time.Millisecond})
	t.Cleanup(func() { _ = reader.Close() })
	writer = New(pgtest.Pool(t, schema), Options{Channel: channel})
	if err := writer.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return reader, writer, reads
}

// settled reports whether n waiters wait on projection with its state known, no read in
// flight and the LISTEN connection up: from then on only notifications change the state.
func settled(s *Store, projection string, n int) bool {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hubs[projection]
	return l.listening && h != nil && h.waiters == n && h.known && !h.reading
}

// TestCommitsCostNoTrackingReadsHoweverManyWait counts the reads of the tracking row with 1
// and with 1,000 waiters: commits cost none (the notification carries the state), and a
// payload that cannot be parsed or a new LISTEN connection costs one for the projection, not
// one per waiter.
func TestCommitsCostNoTrackingReadsHoweverManyWait(t *testing.T) {
	for _, n := range []int{1, 1000} {
		t.Run(fmt.Sprintf("waiters=%d", n), func(t *testing.T) {
			reader, writer, reads := countedStore(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const commits = 20
			results := make(chan error, n)
			wait := func() {
				s, err := reader.Wait(ctx, "p", commits*10)
				if err == nil && !s.Done(commits*10) {
					err = fmt.Errorf("Wait returned %v, not done", s)
				}
				results <- err
			}
			go wait()
			poll.Until(t, 10*time.Second, "the first waiter settled", func() bool { return settled(reader, "p", 1) })
			// The others join a state the LISTEN connection keeps current: no read.
			setup := reads.n.Load()
			for range n - 1 {
				go wait()
			}
			poll.Until(t, 10*time.Second, fmt.Sprintf("%d waiters settled", n), func() bool { return settled(reader, "p", n) })
			if got := reads.n.Load() - setup; got != 0 {
				t.Errorf("%d more waiters cost %d tracking reads; want 0", n-1, got)
			}
			setup = reads.n.Load()

			prev := tracking.State{}
			for i := 1; i < commits; i++ {
				next := tracking.State{Last: tracking.Position{Commit: uint64(i * 10), Prepare: uint64(i * 10)}}
				if err := writer.Apply(ctx, "p", prev, next, func(context.Context, pgx.Tx) error { return nil }); err != nil {
					t.Fatal(err)
				}
				prev = next
			}
			poll.Until(t, 10*time.Second, "the last notification applied", func() bool {
				reader.listener.mu.Lock()
				defer reader.listener.mu.Unlock()
				return reader.listener.hubs["p"].state == prev
			})
			if got := reads.n.Load() - setup; got != 0 {
				t.Errorf("%d commits with %d waiters cost %d tracking reads; want 0", commits-1, n, got)
			}

			// Another program's payload on the channel: one shared read.
			before := reads.n.Load()
			if _, err := writer.Pool().Exec(ctx, `SELECT pg_notify($1, 'not a tracking state')`, reader.opts.Channel); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 10*time.Second, "the read after a malformed payload", func() bool { return reads.n.Load() > before && settled(reader, "p", n) })
			if got := reads.n.Load() - before; got != 1 {
				t.Errorf("a malformed payload with %d waiters cost %d tracking reads; want 1", n, got)
			}

			// A lost LISTEN connection: one shared read once it is back.
			before = reads.n.Load()
			if _, err := writer.Pool().Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`, `LISTEN "`+reader.opts.Channel+`"`); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 10*time.Second, "the read after the LISTEN connection is back", func() bool { return reads.n.Load() > before && settled(reader, "p", n) })
			if got := reads.n.Load() - before; got != 1 {
				t.Errorf("a new LISTEN connection with %d waiters cost %d tracking reads; want 1", n, got)
			}

			// The last commit wakes every waiter, and still costs no read.
			before = reads.n.Load()
			last := tracking.State{Last: tracking.Position{Commit: commits * 10, Prepare: commits * 10}}
			if err := writer.Apply(ctx, "p", prev, last, func(context.Context, pgx.Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := <-results; err != nil {
					t.Fatal(err)
				}
			}
			if got := reads.n.Load() - before; got != 0 {
				t.Errorf("the commit that woke %d waiters cost %d tracking reads; want 0", n, got)
			}
		})
	}
}

// hubState returns the state the reader's hub of projection holds.
func hubState(s *Store, projection string) (tracking.State, bool) {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	if l == nil {
		return tracking.State{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hubs[projection]
	if h == nil {
		return tracking.State{}, false
	}
	return h.state, h.known
}

func at(c uint64) tracking.State {
	return tracking.State{Last: tracking.Position{Commit: c, Prepare: c}}
}

func nothing(context.Context, pgx.Tx) error { return nil }

// TestWaitsFollowRewindsAndIgnoreOtherSchemas: a reset's notification moves the waiters' state
// back, so a wait for a position reached before the reset blocks again; a notification from
// the same channel about another schema's tables changes nothing.
func TestWaitsFollowRewindsAndIgnoreOtherSchemas(t *testing.T) {
	reader, writer, _ := countedStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := writer.Apply(ctx, "p", tracking.State{}, at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if s, err := reader.Wait(ctx, "p", 100); err != nil || s != at(100) {
		t.Fatalf("Wait(100) = %v, %v", s, err)
	}
	poll.Until(t, 10*time.Second, "the reader listening", func() bool {
		reader.mu.Lock()
		l := reader.listener
		reader.mu.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.listening
	})
	if err := writer.Reset(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the reset's notification", func() bool { s, known := hubState(reader, "p"); return known && s == tracking.State{} })

	// Another deployment, in its own schema, on the same channel.
	other := New(pgtest.Pool(t, pgtest.NewSchema(t)), Options{Channel: reader.opts.Channel})
	if err := other.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		s, err := reader.Wait(ctx, "p", 100)
		if err == nil && s != at(100) {
			err = fmt.Errorf("Wait(100) after the reset = %v", s)
		}
		done <- err
	}()
	poll.Until(t, 10*time.Second, "the waiter blocked", func() bool { return reader.Waiting("p") == 1 })
	if err := other.Apply(ctx, "p", tracking.State{}, at(500), nothing); err != nil {
		t.Fatal(err)
	}
	// Notifications arrive in commit order: once this one is seen, the other schema's was too.
	if err := writer.Apply(ctx, "p", tracking.State{}, at(50), nothing); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the notification of 50", func() bool { s, _ := hubState(reader, "p"); return s == at(50) })
	if n := reader.Waiting("p"); n != 1 {
		t.Fatalf("the wait for 100 ended at 50 (%d waiting)", n)
	}
	if err := writer.Apply(ctx, "p", at(50), at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWaitGetsTheReadsLastingFailure: without a tracking table the shared read fails for good,
// and every waiter gets its error; the next wait reads again.
func TestWaitGetsTheReadsLastingFailure(t *testing.T) {
	store := New(pgtest.Pool(t, pgtest.NewSchema(t)), Options{})
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		if _, err := store.Wait(ctx, "p", 1); err == nil || !strings.Contains(err.Error(), "projector_tracking") {
			t.Errorf("Wait %d without a tracking table = %v; want the read's error", i, err)
		}
	}
}
