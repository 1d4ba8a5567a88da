package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/tracking"
)

// loadFunc reads the tracking row of a projection (Store.Load).
type loadFunc func(ctx context.Context, projection string) (tracking.State, bool, error)

// listener holds the one LISTEN connection a Store's waiters share, and for each projection a
// hub: the committed tracking state its waiters compare against. A notification carries the
// committed state (see encodeNotification), so it updates the hub and wakes its waiters without
// any query. The tracking row is read only when the state is not known: for a hub's first
// waiter, after a (re)connection of the LISTEN connection, and after a payload that cannot be
// parsed; each time once per projection, shared by all its waiters, never once per waiter.
type listener struct {
	ctx    context.Context // ends with stop; reads run under it
	cancel context.CancelFunc
	done   chan struct{}
	load   loadFunc
	retry  time.Duration
	reads  sync.WaitGroup // reads in flight

	mu        sync.Mutex
	hubs      map[string]*hub
	listening bool // the LISTEN connection is up: a known state stays current
	stopped   bool // stop was called: no read starts any more
}

func startListener(cfg *pgx.ConnConfig, channel string, retry time.Duration, load loadFunc) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{ctx: ctx, cancel: cancel, done: make(chan struct{}), load: load, retry: retry, hubs: make(map[string]*hub)}
	go l.run(ctx, cfg, channel)
	return l
}

func (l *listener) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.cancel()
	<-l.done
	l.reads.Wait()
}

// notified records the state a notification carried and wakes the projection's waiters.
func (l *listener) notified(projection string, s tracking.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hubs[projection]
	if h == nil {
		h = newHub()
		l.hubs[projection] = h
	}
	h.tracked = true
	h.gen++
	h.set(s)
}

// invalidate forgets every known state (the LISTEN connection was lost or regained, or a
// payload could not be parsed) and, when listening, reads once for each projection with
// waiters.
func (l *listener) invalidate(listening bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listening = listening
	for name, h := range l.hubs {
		h.known = false
		h.gen++
		if h.waiters > 0 && !h.reading && listening {
			l.startRead(name, h)
		}
		l.dropIfIdle(name, h)
	}
}

func (l *listener) run(ctx context.Context, cfg *pgx.ConnConfig, channel string) {
	defer close(l.done)
	bo := backoff.New(10*time.Millisecond, l.retry)
	for ctx.Err() == nil {
		if l.listen(ctx, cfg, channel) {
			bo.Reset()
		}
		l.invalidate(false)
		t := time.NewTimer(bo.Next()) // jittered, so that replicas spread out
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// listen connects, LISTENs, reads the state of every projection with waiters once (covering
// anything committed while no LISTEN was active), then applies notifications until the
// connection fails. It reports whether LISTEN succeeded.
func (l *listener) listen(ctx context.Context, cfg *pgx.ConnConfig, channel string) bool {
	conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return false
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	var schema string
	if err := conn.QueryRow(ctx, currentSchema).Scan(&schema); err != nil {
		return false
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false
	}
	l.invalidate(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true
		}
		from, name, s, err := decodeNotification(n.Payload)
		switch {
		case err != nil:
			// Not a payload of this version (an older writer, another program): read the
			// state of each projection with waiters once.
			l.invalidate(true)
		case from == schema:
			l.notified(name, s)
		}
		// Otherwise the notification is about the tables of another schema.
	}
}
