package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
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

// hub is the shared wait state of one projection. Its fields are guarded by listener.mu.
type hub struct {
	state tracking.State
	// known tells that state is the committed state: read, or notified, while the LISTEN
	// connection was up since.
	known bool
	// tracked tells that the projection has a tracking row or was notified: a hub without
	// waiters is kept (and kept current by notifications) only then.
	tracked bool
	// gen counts the changes of state from notifications and invalidations, so that a read
	// that started before one does not overwrite it.
	gen     uint64
	reading bool
	// err is the failure of the last read, until the next read starts or a state arrives.
	err     error
	waiters int
	changed chan struct{} // closed and replaced whenever state, known or err change
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

// wait blocks until projection's committed state has processed commit, ctx ends (returning the
// latest known state with ctx's error), the listener stops, or a read fails for good.
func (l *listener) wait(ctx context.Context, projection string, commit uint64) (tracking.State, error) {
	l.mu.Lock()
	h := l.hubs[projection]
	if h == nil {
		h = &hub{changed: make(chan struct{})}
		l.hubs[projection] = h
	}
	h.waiters++
	if (!h.known || !l.listening) && !h.reading {
		l.startRead(projection, h)
	}
	l.mu.Unlock()
	defer l.leave(projection, h)
	for {
		l.mu.Lock()
		st, known, err, ch := h.state, h.known, h.err, h.changed
		l.mu.Unlock()
		if known && st.Done(commit) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		select {
		case <-ch:
		case <-l.done:
			return st, fmt.Errorf("postgres: wait for %q: %w", projection, errClosed)
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

func (l *listener) leave(projection string, h *hub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.waiters--
	l.dropIfIdle(projection, h)
}

// dropIfIdle forgets h when nothing needs it: no waiters, no read in flight, and no state
// that notifications keep current. Called with l.mu held.
func (l *listener) dropIfIdle(projection string, h *hub) {
	if h.waiters == 0 && !h.reading && !(h.known && h.tracked && l.listening) && l.hubs[projection] == h {
		delete(l.hubs, projection)
	}
}

// waiting returns the number of waiters blocked on projection.
func (l *listener) waiting(projection string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.hubs[projection]; h != nil {
		return h.waiters
	}
	return 0
}

func (h *hub) wake() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// startRead reads projection's tracking row into h in a goroutine of its own (under the
// listener's context, so a waiter that leaves does not cancel the read the others share).
// Called with l.mu held and h.reading false.
func (l *listener) startRead(projection string, h *hub) {
	if l.stopped {
		return
	}
	h.reading, h.err = true, nil
	l.reads.Add(1)
	go func() {
		defer l.reads.Done()
		l.read(projection, h)
	}()
}

// read loads the row until it has a state to give: a transient failure is retried with
// backoff (up to the listener's retry) while waiters remain; any other failure is handed to
// the waiters.
func (l *listener) read(projection string, h *hub) {
	backoff := 10 * time.Millisecond
	for {
		l.mu.Lock()
		gen := h.gen
		l.mu.Unlock()
		st, ok, err := l.load(l.ctx, projection)
		l.mu.Lock()
		switch {
		case err == nil && h.gen == gen:
			h.state, h.known, h.tracked = st, true, ok
			h.wake()
		case err == nil && h.known:
			// A notification arrived during the read: it is at least as new.
		case l.ctx.Err() != nil || h.waiters == 0:
			// Stopping, or nobody is waiting any more.
		case err == nil:
			// Invalidated during the read (a reconnection): read again at once.
			l.mu.Unlock()
			continue
		case !Transient(err):
			h.err = err
			h.wake()
		default:
			// A killed connection or a restarting server: read again after a backoff.
			l.mu.Unlock()
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
			}
			backoff = min(2*backoff, l.retry)
			continue
		}
		l.finishRead(projection, h)
		l.mu.Unlock()
		return
	}
}

// finishRead ends a read of h. Called with l.mu held.
func (l *listener) finishRead(projection string, h *hub) {
	h.reading = false
	l.dropIfIdle(projection, h)
}

// notified records the state a notification carried and wakes the projection's waiters.
func (l *listener) notified(projection string, s tracking.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hubs[projection]
	if h == nil {
		h = &hub{changed: make(chan struct{})}
		l.hubs[projection] = h
	}
	h.state, h.known, h.tracked, h.err = s, true, true, nil
	h.gen++
	h.wake()
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
	delay := 10 * time.Millisecond
	for ctx.Err() == nil {
		if l.listen(ctx, cfg, channel) {
			delay = 10 * time.Millisecond
		}
		l.invalidate(false)
		t := time.NewTimer(delay/2 + rand.N(delay/2+1)) // jittered, so that replicas spread out
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		delay = min(delay*2, l.retry)
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
