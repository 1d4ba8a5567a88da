package emulator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/projector-dev/projector/internal/poll"
)

func TestStoreDropSubscriptionsEndsActiveOnes(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	stAppend(t, f.store, "d1", expNoStream, stEvents(1, "E")...)
	s1, err := f.client.SubscribeToStream(ctx, "d1", kurrentdb.SubscribeToStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{Filter: kurrentdb.ExcludeSystemEventsFilter()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	until(t, s1, "caughtup")
	until(t, s2, "caughtup")
	f.srv.DropSubscriptions(status.Error(codes.Aborted, "dropped by test"))
	for _, s := range []*kurrentdb.Subscription{s1, s2} {
		if m := next(t, s); m.kind != "dropped" || rdErrorCode(m.err) != kurrentdb.ErrorAborted {
			t.Fatalf("after DropSubscriptions: %v, want dropped with ErrorAborted", m)
		}
	}
	// New subscriptions are not affected.
	s3, err := f.client.SubscribeToStream(ctx, "d1", kurrentdb.SubscribeToStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	until(t, s3, "caughtup")
	stAppend(t, f.store, "d1", expAny, stEvents(1, "E")...)
	if m := next(t, s3); m.kind != "event" || m.rev != 1 {
		t.Fatalf("after drop, a new subscription got %v", m)
	}
}

func TestSubscriptionCancelReleasesResources(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	var subs []*kurrentdb.Subscription
	for i := 0; i < 3; i++ {
		s, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		until(t, s, "caughtup")
		subs = append(subs, s)
	}
	if n := f.store.ActiveSubscriptions(); n != 3 {
		t.Fatalf("ActiveSubscriptions = %d, want 3", n)
	}
	for _, s := range subs {
		_ = s.Close()
	}
	poll.UntilNil(t, 5*time.Second, "every closed subscription has ended", func() error {
		if n := f.store.ActiveSubscriptions(); n != 0 {
			return fmt.Errorf("ActiveSubscriptions = %d after Close, want 0", n)
		}
		return nil
	})
}

func TestSlowSubscriberDoesNotBlockAppends(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	// A raw subscriber that reads nothing while 12 MiB are appended: far more
	// than the HTTP/2 flow-control windows.
	slowReq := rdAllReq(0, nil)
	slowReq.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	slow := rdSubscribe(t, ctx, f, slowReq)
	fast, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	until(t, fast, "caughtup")
	const batches, perBatch = 30, 100
	payload := `{"pad":"` + strings.Repeat("x", 4096) + `"}`
	done := make(chan error, 1)
	go func() {
		for b := 0; b < batches; b++ {
			evs := make([]ProposedEvent, perBatch)
			for i := range evs {
				evs[i] = stEvent("Big", payload)
			}
			if _, err := f.store.Append(StreamAppend{Stream: "big", Expected: expAny, Events: evs}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < batches*perBatch; i++ {
		if m := next(t, fast); m.kind != "event" || m.typ != "Big" || m.rev != uint64(i) {
			t.Fatalf("fast subscriber message %d = %v", i, m)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("appends blocked by a subscriber that does not read")
	}
	// The slow subscriber then gets everything, in order.
	var caught bool
	var rev uint64
	for rev < batches*perBatch {
		m := rawMsg(t, slow)
		switch {
		case m.kind == "caughtup":
			caught = true
		case m.kind == "event" && m.stream == "big":
			if m.rev != rev {
				t.Fatalf("slow subscriber got revision %d, want %d", m.rev, rev)
			}
			rev++
		case m.kind == "dropped":
			t.Fatalf("slow subscriber dropped: %v", m.err)
		}
	}
	if !caught {
		t.Fatalf("slow subscriber got no caught-up before the live events")
	}
}
