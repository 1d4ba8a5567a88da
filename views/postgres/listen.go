package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/tracking"
)

// loadFunc reads the tracking row of a projection and its generation (Store.loadForWait).
type loadFunc func(ctx context.Context, projection string) (tracking.State, bool, uint64, error)

// listener holds the one LISTEN connection a Store's waiters share, and for each projection a
// hub: the committed tracking state its waiters compare against. A notification carries the
// committed state (see encodeNotification), so it updates the hub and wakes its waiters without
// any query. The tracking row is read only when the state is not known: for a hub's first
// waiter, after a (re)connection of the LISTEN connection, and after a payload that cannot be
// parsed or carries no generation; each time once per projection, shared by all its waiters,
// never once per waiter. Reads and notifications may arrive in any order relative to the commits
// they come from: the hub orders them by generation, then position (see hub.offer).
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

// notified offers the state s of generation that a notification (or this process's own
// rewind) carried to the projection's hub, waking the waiters it satisfies.
func (l *listener) notified(projection string, s tracking.State, generation uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hubs[projection]
	if h == nil {
		h = newHub()
		l.hubs[projection] = h
	}
	h.tracked = true
	h.offer(s, generation)
}

// reread forgets the known state of projection (a notification of unknown generation named it)
// and reads its row once when it has waiters.
func (l *listener) reread(projection string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hubs[projection]
	if h == nil {
		return
	}
	h.known = false
	h.invalidations++
	if h.waiters > 0 && !h.reading && l.listening {
		l.startRead(projection, h)
	}
	l.dropIfIdle(projection, h)
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
		h.invalidations++
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
		got, err := decodeNotification(n.Payload)
		switch {
		case err != nil:
			// Not a payload of this version (an older writer, another program): read the
			// state of each projection with waiters once.
			l.invalidate(true)
		case got.schema != schema:
		case !got.generational:
			// A writer of the version before generations: its state may be older than one
			// known, across a rewind.
			l.reread(got.projection)
		default:
			l.notified(got.projection, got.state, got.generation)
		}
		// Otherwise the notification is about the tables of another schema.
	}
}
