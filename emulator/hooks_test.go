package emulator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/poll"
)

// nextLive waits for the subscription's next event that is not a
// checkpoint or caught-up marker.
func nextLive(t *testing.T, sub *kurrentdb.Subscription) *kurrentdb.SubscriptionEvent {
	t.Helper()
	for {
		ev := sub.Recv()
		if ev.CheckPointReached != nil || ev.CaughtUp != nil {
			continue
		}
		return ev
	}
}

func TestDropSubscriptions(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	stream := "drop-" + uuid.NewString()
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev := nextLive(t, sub); ev.EventAppeared == nil {
		t.Fatalf("first subscription event = %+v, want the stored event", ev)
	}

	srv.DropSubscriptions(status.Error(codes.Unavailable, "dropped by test"))
	ev := nextLive(t, sub)
	if ev.SubscriptionDropped == nil {
		t.Fatalf("after DropSubscriptions: %+v, want SubscriptionDropped", ev)
	}
	if !strings.Contains(ev.SubscriptionDropped.Error.Error(), "dropped by test") {
		t.Errorf("drop error = %v, want the injected one", ev.SubscriptionDropped.Error)
	}

	// New subscriptions are not affected.
	sub2, err := c.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	if ev := nextLive(t, sub2); ev.EventAppeared == nil {
		t.Fatalf("new subscription after the drop: %+v, want the stored event", ev)
	}
}

func TestSetLatency(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	stream := "latency-" + uuid.NewString()
	// First call also connects; measure the ones after it.
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatal(err)
	}
	const d = 150 * time.Millisecond
	srv.SetLatency(d)
	start := time.Now()
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatal(err)
	}
	if _, err := readAllOf(t, c, stream); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*d {
		t.Fatalf("two calls with %v latency took %v, want at least %v", d, took, 2*d)
	}

	// A call whose deadline is shorter than the latency fails with
	// DeadlineExceeded instead of waiting it out.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := c.AppendToStream(short, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...)
	if err == nil {
		t.Fatal("append with a deadline shorter than the latency succeeded")
	}
	srv.SetLatency(0)
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatalf("append after removing the latency: %v", err)
	}
}

func TestRestartKeepsDataAndPorts(t *testing.T) {
	srv := startTest(t, Options{})
	plain, secure := srv.Addr(), srv.TLSAddr()
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	stream := "restart-" + uuid.NewString()
	before, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(3, "A")...)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if srv.Addr() != plain || srv.TLSAddr() != secure {
		t.Fatalf("addresses after restart = %s, %s; want %s, %s", srv.Addr(), srv.TLSAddr(), plain, secure)
	}
	if ev := nextLive(t, sub); ev.SubscriptionDropped == nil {
		t.Fatalf("subscription across a restart: %+v, want it dropped", ev)
	}

	// The client reconnects on its own; the data is unchanged.
	var events []*kurrentdb.ResolvedEvent
	poll.UntilNil(t, 10*time.Second, "a read after the restart succeeds", func() error {
		var err error
		events, err = readAllOf(t, c, stream)
		return err
	})
	if len(events) != 3 || events[2].Event.Position.Commit != before.CommitPosition {
		t.Fatalf("after restart: %d events, last at %d; want 3 ending at %d", len(events), events[len(events)-1].Event.Position.Commit, before.CommitPosition)
	}
	after, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.Revision(2)}, testEvents(1, "B")...)
	if err != nil || after.CommitPosition <= before.CommitPosition {
		t.Fatalf("append after restart = %+v, %v; want a later position", after, err)
	}
	tc := newTestClient(t, srv.TLSURI())
	if _, err := tc.Gossip(ctx); err != nil {
		t.Fatalf("TLS listener after restart: %v", err)
	}
}

func TestCloseEndsEveryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := Start(context.Background(), Options{TLSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := kurrentdb.ParseConnectionString(srv.URI())
	if err != nil {
		t.Fatal(err)
	}
	c, err := kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	stream := "close-" + uuid.NewString()
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatal(err)
	}
	// A live subscription must not keep Close waiting.
	sub, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v with a live subscription", took)
	}
	if ev := nextLive(t, sub); ev.SubscriptionDropped == nil {
		t.Fatalf("subscription after Close: %+v, want dropped", ev)
	}
	sub.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := srv.Restart(ctx); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}
