package fanout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
)

// Subscribers of different topics starting together share one read of the log: each event is
// read once, and each subscriber gets exactly its own events, checkpoints and caught-up
// message, while catching up and live.
func TestSubscribersStartingTogetherShareOneRead(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 200)
	src := New(l, Options{Topics: allTypes, Window: 16})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	ab := subscribe(t, src, []string{typeA, typeB}, tracking.State{})
	c := subscribe(t, src, []string{typeC}, tracking.State{})
	if n := l.Subscriptions(); n != 1 {
		t.Fatalf("open subscriptions of the log = %d, want 1 (shared)", n)
	}
	together(t, (*reader).untilCaughtUp, a, ab, c)
	appendMixed(l, 20)
	together(t, untilLast(l.Events()), a, ab, c)
	checkAll(l.Events(), a, ab, c)
	if got, want := l.Delivered(), len(l.Events()); got != want {
		t.Errorf("events read from the log = %d, want %d (each once)", got, want)
	}
}

// Without Options.Topics, a shared read reads the topics of the open subscriptions: a subscriber
// of other topics near it starts a wider one, which the subscribers of the older one move to,
// until one read serves them all.
func TestSubscribersOfOtherTopicsMoveToAWiderSharedRead(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 100)
	src := New(l, Options{Window: 16})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	b := subscribe(t, src, []string{typeB}, tracking.State{})
	c := subscribe(t, src, []string{typeA, typeC}, tracking.State{})
	if n := l.Subscriptions(); n != 3 {
		t.Fatalf("open subscriptions of the log = %d, want 3 (each newcomer started a wider read)", n)
	}
	together(t, (*reader).untilCaughtUp, a, b, c)
	appendMixed(l, 20)
	together(t, untilLast(l.Events()), a, b, c)
	waitSubscriptions(t, l, 1)
	appendMixed(l, 20)
	together(t, untilLast(l.Events()), a, b, c)
	checkAll(l.Events(), a, b, c)
}

// A subscriber of other topics far behind the shared read reads on its own; once it is near, it
// starts a wider shared read in its place, which the others move to.
func TestSubscriberOfOtherTopicsBehindStartsAWiderReadOnceNear(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 100)
	src := New(l, Options{Window: 8, MaxLead: 2000})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	together(t, (*reader).untilCaughtUp, a)
	b := subscribe(t, src, []string{typeB, typeC}, tracking.State{})
	if n := l.Subscriptions(); n != 2 {
		t.Fatalf("open subscriptions of the log = %d, want 2 (the one far behind on its own)", n)
	}
	together(t, (*reader).untilCaughtUp, b)
	for range 3 {
		appendMixed(l, 12)
		together(t, untilLast(l.Events()), a, b)
	}
	waitSubscriptions(t, l, 1)
	appendMixed(l, 12)
	together(t, untilLast(l.Events()), a, b)
	checkAll(l.Events(), a, b)
}

// A subscriber behind the shared read's window reads on its own, then hands over to the shared
// read once it reaches it, without missing or repeating an event.
func TestSubscriberBehindReadsOnItsOwnThenHandsOver(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 100)
	src := New(l, Options{Topics: allTypes, Window: 8})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	together(t, (*reader).untilCaughtUp, a)
	b := subscribe(t, src, []string{typeB}, tracking.State{})
	if n := l.Subscriptions(); n != 2 {
		t.Fatalf("open subscriptions of the log = %d, want 2 (the late one on its own)", n)
	}
	together(t, (*reader).untilCaughtUp, b)
	appendMixed(l, 40)
	together(t, untilLast(l.Events()), a, b)
	waitSubscriptions(t, l, 1)
	appendMixed(l, 12)
	together(t, untilLast(l.Events()), a, b)
	checkAll(l.Events(), a, b)
}

// A subscriber further ahead than MaxLead of a shared read that is still catching up is not held
// back by it: it reads on its own, and hands over once the shared read is live.
func TestSubscriberAheadOfACatchingUpReadReadsOnItsOwn(t *testing.T) {
	l := projectiontest.NewLog()
	log := appendMixed(l, 100)
	src := New(l, Options{Topics: allTypes, Window: 8, StallAfter: time.Hour, MaxLead: 1})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	b := subscribe(t, src, []string{typeA, typeB}, after(log[60]))
	cp := subscribe(t, src, []string{typeC}, tracking.State{Checkpoint: log[70].Position.Commit})
	if n := l.Subscriptions(); n != 3 {
		t.Fatalf("open subscriptions of the log = %d, want 3 (those ahead on their own)", n)
	}
	together(t, (*reader).untilCaughtUp, b, cp) // a, not reading, does not hold them back
	together(t, (*reader).untilCaughtUp, a)
	appendMixed(l, 20)
	together(t, untilLast(l.Events()), a, b, cp)
	waitSubscriptions(t, l, 1)
	appendMixed(l, 8)
	together(t, untilLast(l.Events()), a, b, cp)
	checkAll(l.Events(), a, b, cp)
}

// A subscriber a little ahead of a shared read still catching up (within MaxLead) attaches to
// it, skipping what it has been through, rather than reading that stretch on its own.
func TestSubscriberSlightlyAheadAttachesAndWaits(t *testing.T) {
	l := projectiontest.NewLog()
	log := appendMixed(l, 100)
	src := New(l, Options{Topics: allTypes, Window: 8, MaxLead: log[40].Position.Commit - log[0].Position.Commit})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	b := subscribe(t, src, []string{typeA, typeB}, after(log[20]))
	far := subscribe(t, src, []string{typeB}, after(log[60]))
	if n := l.Subscriptions(); n != 2 {
		t.Fatalf("open subscriptions of the log = %d, want 2 (the one within MaxLead attached)", n)
	}
	together(t, (*reader).untilCaughtUp, a, b, far)
	appendMixed(l, 10)
	together(t, untilLast(l.Events()), a, b, far)
	checkAll(l.Events(), a, b, far)
}

// A subscriber that stops reading holds the shared read back for StallAfter at most: then it is
// detached onto its own read, the others go on, and it later gets all its events once.
func TestStalledSubscriberIsDetachedOntoItsOwnRead(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 60)
	src := New(l, Options{Topics: allTypes, Window: 4, StallAfter: 20 * time.Millisecond})
	fast := subscribe(t, src, []string{typeA, typeB}, tracking.State{})
	stalled := subscribe(t, src, []string{typeA, typeC}, tracking.State{})
	together(t, (*reader).untilCaughtUp, fast)
	together(t, (*reader).untilCaughtUp, stalled)
	appendMixed(l, 8)
	together(t, untilLast(l.Events()), fast, stalled)
	checkAll(l.Events(), fast, stalled)
}

// The shared read's failure reaches every attached subscriber, and a new subscription starts a
// new shared read.
func TestSharedReadFailureReachesEverySubscriber(t *testing.T) {
	l := projectiontest.NewLog()
	log := appendMixed(l, 30)
	src := New(l, Options{Topics: allTypes})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	b := subscribe(t, src, []string{typeB}, tracking.State{})
	together(t, (*reader).untilCaughtUp, a, b)
	l.Drop(errTest)
	for _, r := range []*reader{a, b} {
		if _, err := r.next(); !errors.Is(err, errTest) {
			t.Errorf("topics %v: Next after the drop = %v, want %v", r.topics, err, errTest)
		}
		_ = r.sub.Close()
	}
	waitSubscriptions(t, l, 0)
	again := subscribe(t, src, []string{typeA}, after(log[20]))
	together(t, (*reader).untilCaughtUp, again)
	checkAll(l.Events(), again)
}

// A shared read that cannot start fails the Subscribe that started it.
func TestSharedReadThatCannotStartFailsSubscribe(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 10)
	src := New(l, Options{Topics: allTypes})
	l.FailSubscribe(errTest)
	if _, err := src.Subscribe(context.Background(), []string{typeA}, tracking.State{}); !errors.Is(err, errTest) {
		t.Fatalf("Subscribe = %v, want %v", err, errTest)
	}
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	together(t, (*reader).untilCaughtUp, a)
	checkAll(l.Events(), a)
}

// Closing a subscriber releases what it holds; the shared read ends with its last subscriber,
// and the end of a subscription's context closes it.
func TestCloseAndContextEndReleaseTheSharedRead(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 10)
	src := New(l, Options{Topics: allTypes})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	byCtx, err := src.Subscribe(ctx, []string{typeA}, tracking.State{})
	if err != nil {
		t.Fatal(err)
	}
	a := subscribe(t, src, []string{typeB}, tracking.State{})
	together(t, (*reader).untilCaughtUp, a)
	cancel()
	poll.Until(t, 10*time.Second, "the subscription closed by the end of its context", func() bool {
		_, err := byCtx.Next(context.Background())
		return err != nil
	})
	if n := l.Subscriptions(); n != 1 {
		t.Errorf("open subscriptions of the log = %d, want 1", n)
	}
	if err := a.sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n := l.Subscriptions(); n != 0 {
		t.Errorf("open subscriptions of the log after the last Close = %d, want 0", n)
	}
	if _, err := a.sub.Next(context.Background()); err == nil {
		t.Error("Next after Close succeeded")
	}
	if err := a.sub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Head and Probe pass through to a source that has them, and a source without them gives a
// Source without them (the runner asks for them by type).
func TestHeaderAndProberPassThrough(t *testing.T) {
	l := projectiontest.NewLog()
	e := l.Append("s", typeA, nil)
	src := New(l, Options{})
	head, _, err := src.(projection.Header).Head(context.Background())
	if err != nil || head != e.Position {
		t.Errorf("Head = %v, %v; want %v", head, err, e.Position)
	}
	found, err := src.(projection.Prober).Probe(context.Background(), []string{typeA}, tracking.State{}, e.Position.Commit)
	if err != nil || !found {
		t.Errorf("Probe = %v, %v; want true", found, err)
	}
	plain := New(struct{ projection.Source }{l}, Options{})
	if _, ok := plain.(projection.Header); ok {
		t.Error("a Source over a source without Head implements projection.Header")
	}
	if _, ok := plain.(projection.Prober); ok {
		t.Error("a Source over a source without Probe implements projection.Prober")
	}
}

// A subscriber takes the entries ready in the shared read several at once; once it is closed,
// Next fails rather than deliver the rest of them, and the other subscribers miss nothing.
func TestClosedSubscriberDeliversNoneOfTheEntriesTakenAhead(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 200)
	src := New(l, Options{Topics: allTypes, Window: 1024})
	a := subscribe(t, src, []string{typeA}, tracking.State{})
	b := subscribe(t, src, []string{typeA, typeB}, tracking.State{})
	together(t, (*reader).untilCaughtUp, b) // the ring now holds every entry a has to read
	if _, err := a.next(); err != nil {
		t.Fatal(err)
	}
	w := a.sub.(*subscription)
	if left := len(w.taken) - w.next; left == 0 {
		t.Fatalf("the subscriber took %d entries at once, and has none left to deliver: want several", len(w.taken))
	}
	if err := a.sub.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := a.sub.Next(context.Background()); !errors.Is(err, errClosed) {
		t.Errorf("Next after Close = %+v, %v; want %v", m, err, errClosed)
	}
	appendMixed(l, 20)
	together(t, untilLast(l.Events()), b)
	checkAll(l.Events(), b)
}
