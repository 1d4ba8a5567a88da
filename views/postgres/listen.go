package postgres

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/internal/backoff"
)

// listener holds the one LISTEN connection a Store's waiters share. Each waiter registers a
// channel for its projection; a notification for that projection, or a (re)connection, wakes
// it to re-read the tracking row.
type listener struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]bool
}

func startListener(cfg *pgx.ConnConfig, channel string, retry time.Duration) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{cancel: cancel, done: make(chan struct{}), waiters: make(map[string]map[chan struct{}]bool)}
	go l.run(ctx, cfg, channel, retry)
	return l
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}

func (l *listener) subscribe(projection string) chan struct{} {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiters[projection] == nil {
		l.waiters[projection] = make(map[chan struct{}]bool)
	}
	l.waiters[projection][ch] = true
	return ch
}

func (l *listener) unsubscribe(projection string, ch chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiters[projection], ch)
	if len(l.waiters[projection]) == 0 {
		delete(l.waiters, projection)
	}
}

// wake signals the waiters of projection, or of every projection when all is true.
func (l *listener) wake(projection string, all bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, set := range l.waiters {
		if !all && name != projection {
			continue
		}
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (l *listener) run(ctx context.Context, cfg *pgx.ConnConfig, channel string, retry time.Duration) {
	defer close(l.done)
	bo := backoff.New(10*time.Millisecond, retry)
	for ctx.Err() == nil {
		if l.listen(ctx, cfg, channel) {
			bo.Reset()
		}
		t := time.NewTimer(bo.Next()) // jittered, so that replicas spread out
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// listen connects, LISTENs, wakes every waiter (they re-read, covering anything committed
// while no LISTEN was active), then relays notifications until the connection fails. It
// reports whether LISTEN succeeded.
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
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false
	}
	l.wake("", true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true
		}
		if _, name, ok := strings.Cut(n.Payload, " "); ok {
			l.wake(name, false)
		}
	}
}
