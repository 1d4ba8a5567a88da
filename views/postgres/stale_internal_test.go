package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/tracking"
)

// staleNotifications listens on store's channel and records every payload, so that a test can
// deliver one again after a rewind: a notification committed before the rewind that a
// listener sees only after it (another process's listener, or this process's after the
// rewind's own update of its waiters).
type staleNotifications struct {
	conn *pgx.Conn
}

func listenAlongside(t *testing.T, ctx context.Context, store *Store) *staleNotifications {
	t.Helper()
	conn, err := pgx.ConnectConfig(ctx, store.pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{store.opts.Channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return &staleNotifications{conn: conn}
}

// next returns the next payload on the channel.
func (n *staleNotifications) next(t *testing.T, ctx context.Context) string {
	t.Helper()
	got, err := n.conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return got.Payload
}

// redeliver sends payload on store's channel again, then commits a fence for the projection
// "fence" and waits until reader's hub has it: notifications arrive in commit order, so the
// redelivered one was handled by then.
func redeliver(t *testing.T, ctx context.Context, writer, reader *Store, payload string, fence uint64) {
	t.Helper()
	if _, err := writer.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, writer.opts.Channel, payload); err != nil {
		t.Fatal(err)
	}
	prev, _, err := writer.Load(ctx, "fence")
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Apply(ctx, "fence", prev, at(fence), nothing); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, fmt.Sprintf("the fence at %d", fence), func() bool { s, known := hubState(reader, "fence"); return known && s == at(fence) })
}

// waitFor starts reader.Wait(projection, commit) and returns its answer's channel once it is
// blocked, or failing the test when it returns at once.
func waitFor(t *testing.T, ctx context.Context, reader *Store, projection string, commit uint64) <-chan error {
	t.Helper()
	return waitOn(t, ctx, reader, projection, projection, commit)
}

// waitOn is waitFor for a wait that blocks on the hub of another name (a partition's).
func waitOn(t *testing.T, ctx context.Context, reader *Store, projection, hub string, commit uint64) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	returned := make(chan tracking.State, 1)
	go func() {
		s, err := reader.Wait(ctx, projection, commit)
		if err == nil && !s.Done(commit) {
			err = fmt.Errorf("Wait(%d) = %v, which has not processed it", commit, s)
		}
		returned <- s
		done <- err
	}()
	poll.Until(t, 10*time.Second, fmt.Sprintf("the wait for %d blocked or answered", commit), func() bool {
		return reader.Waiting(hub) == 1 || len(returned) == 1
	})
	if len(returned) == 1 {
		t.Fatalf("Wait(%q, %d) returned %v at once: the rewound view has not processed it", projection, commit, <-returned)
	}
	return done
}

// stillWaiting fails the test when the wait behind done has returned.
func stillWaiting(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s: the wait returned (%v) for a position the rewound view has not processed", what, err)
	default:
	}
}

// TestStaleNotificationAfterOwnRewindIsIgnored: the process that rewinds updates its waiters at
// once; the notification of a commit before the rewind, seen by its listener only after that,
// must not bring the old position back.
func TestStaleNotificationAfterOwnRewindIsIgnored(t *testing.T) {
	store, _, _ := countedStore(t)
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tap := listenAlongside(t, ctx, store)
	if err := store.Apply(ctx, "p", tracking.State{}, at(100), nothing); err != nil {
		t.Fatal(err)
	}
	stale := tap.next(t, ctx)
	poll.Until(t, 10*time.Second, "the store listening with p's state known", func() bool {
		if s, err := store.Wait(ctx, "p", 100); err != nil || s != at(100) {
			t.Fatalf("Wait(100) = %v, %v", s, err)
		}
		return settled(store, "p", 0)
	})
	if _, err := store.Rewind(ctx, "p", tracking.State{}, nil); err != nil {
		t.Fatal(err)
	}
	redeliver(t, ctx, store, store, stale, 1)
	if s, known := hubState(store, "p"); known && s.Done(100) {
		t.Fatalf("after the rewind and a notification from before it, the waiters' state of p is %v", s)
	}
	done := waitFor(t, ctx, store, "p", 100)
	if err := store.Apply(ctx, "p", tracking.State{}, at(50), nothing); err != nil {
		t.Fatal(err)
	}
	redeliver(t, ctx, store, store, stale, 2)
	stillWaiting(t, done, "at 50 with a stale notification of 100")
	if err := store.Apply(ctx, "p", at(50), at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStaleNotificationAfterReadOfRewoundRowIsIgnored: another process reads the row after the
// rewind (its first waiter), then its listener sees the notification of a commit before the
// rewind: the waiter must go on waiting.
func TestStaleNotificationAfterReadOfRewoundRowIsIgnored(t *testing.T) {
	for _, to := range []tracking.State{{}, at(20)} {
		t.Run(fmt.Sprintf("to=%d", to.Last.Commit), func(t *testing.T) {
			reader, writer, _ := countedStore(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tap := listenAlongside(t, ctx, writer)
			if err := writer.Apply(ctx, "p", tracking.State{}, at(100), nothing); err != nil {
				t.Fatal(err)
			}
			stale := tap.next(t, ctx)
			if _, err := writer.Rewind(ctx, "p", to, nil); err != nil {
				t.Fatal(err)
			}
			done := waitFor(t, ctx, reader, "p", 100)
			poll.Until(t, 10*time.Second, "the reader settled on p", func() bool { return settled(reader, "p", 1) })
			redeliver(t, ctx, writer, reader, stale, 1)
			stillWaiting(t, done, "a stale notification of 100 after the read")
			if err := writer.Apply(ctx, "p", to, at(100), nothing); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
