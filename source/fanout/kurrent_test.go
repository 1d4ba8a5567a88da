package fanout_test

// The shared read over the KurrentDB source and the emulator, through real gRPC.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/fanout"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
)

const (
	registered = "__main__:Dog.Registered"
	trick      = "__main__:Dog.TrickAdded"
	invoice    = "__main__:Invoice.Issued"
)

// Three subscribers at different positions (the start, after an event, at a checkpoint past
// the last event processed) get from the shared read exactly the events that their own
// filtered subscriptions of the KurrentDB source get, catching up and live.
func TestSubscribersAtDifferentPositionsGetTheirOwnEventsOverTheEmulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	client, err := kurrent.NewClient(srv.URI(), kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	direct := kurrent.New(client, kurrent.Options{})
	under := &counted{Source: direct}
	shared := fanout.New(under, fanout.Options{Topics: []string{registered, trick, invoice}, Window: 64})

	written, types := appendEvents(ctx, t, client, 300)
	subscribers := []struct {
		topics []string
		from   tracking.State
	}{
		{[]string{registered}, tracking.State{}},
		{[]string{registered, trick}, tracking.State{Last: written[40]}},
		{[]string{trick, invoice}, tracking.State{Last: written[100], Checkpoint: written[150].Commit}},
	}
	subs := make([]projection.Subscription, len(subscribers))
	for i, s := range subscribers {
		if subs[i], err = shared.Subscribe(ctx, s.topics, s.from); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		defer subs[i].Close()
	}
	got := make([][]string, len(subs))
	readAll(ctx, t, subs, got, func(int, projection.Message) bool { return false })
	live, liveTypes := appendEvents(ctx, t, client, 120)
	written, types = append(written, live...), append(types, liveTypes...)
	readAll(ctx, t, subs, got, func(i int, m projection.Message) bool {
		return m.Kind == projection.EventMessage && m.Event.Position.Compare(lastOf(written, types, subscribers[i].topics)) >= 0
	})

	// Those that started ahead of the shared read, on their own, handed over to it once live.
	poll.Until(t, 10*time.Second, "one open subscription of the KurrentDB source", func() bool { return under.open.Load() == 1 })

	for i, s := range subscribers {
		own, err := direct.Subscribe(ctx, s.topics, s.from)
		if err != nil {
			t.Fatal(err)
		}
		want := drainIDs(ctx, t, own)
		_ = own.Close()
		if len(got[i]) != len(want) {
			t.Fatalf("subscriber %d (%v from %v): %d events, its own subscription %d", i, s.topics, s.from, len(got[i]), len(want))
		}
		for j := range want {
			if got[i][j] != want[j] {
				t.Fatalf("subscriber %d (%v from %v): event %d is %s, its own subscription's %s", i, s.topics, s.from, j, got[i][j], want[j])
			}
		}
	}
}

// counted counts the open subscriptions of a Source.
type counted struct {
	projection.Source
	open atomic.Int64
}

func (c *counted) Subscribe(ctx context.Context, topics []string, from tracking.State) (projection.Subscription, error) {
	sub, err := c.Source.Subscribe(ctx, topics, from)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countedSub{Subscription: sub, open: &c.open}, nil
}

type countedSub struct {
	projection.Subscription
	open *atomic.Int64
	once sync.Once
}

func (s *countedSub) Close() error {
	s.once.Do(func() { s.open.Add(-1) })
	return s.Subscription.Close()
}

// appendEvents appends n events cycling through the three types, one append each, and returns
// their positions and types.
func appendEvents(ctx context.Context, t *testing.T, client *kurrentdb.Client, n int) (positions []tracking.Position, types []string) {
	t.Helper()
	cycle := []string{registered, trick, trick, invoice, registered}
	for i := range n {
		typ := cycle[i%len(cycle)]
		ev := kurrentdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: kurrentdb.ContentTypeJson, Data: fmt.Appendf(nil, `{"i":%d}`, i)}
		r, err := client.AppendToStream(ctx, fmt.Sprintf("dog-%d", i%11), kurrentdb.AppendToStreamOptions{}, ev)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		positions = append(positions, tracking.Position{Commit: r.CommitPosition, Prepare: r.PreparePosition})
		types = append(types, typ)
	}
	return positions, types
}

// lastOf returns the position of the last event written of one of topics.
func lastOf(positions []tracking.Position, types []string, topics []string) tracking.Position {
	for i := len(positions) - 1; i >= 0; i-- {
		if slices.Contains(topics, types[i]) {
			return positions[i]
		}
	}
	return tracking.Position{}
}

// readAll reads every subscription at once until its caught-up message, or, with done, until
// done says so of a message; the IDs of the events go to got.
func readAll(ctx context.Context, t *testing.T, subs []projection.Subscription, got [][]string, done func(int, projection.Message) bool) {
	t.Helper()
	errs := make(chan error, len(subs))
	for i, sub := range subs {
		go func() {
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d events: %w", i, len(got[i]), err)
					return
				}
				if m.Kind == projection.EventMessage {
					got[i] = append(got[i], m.Event.ID)
				}
				if done(i, m) || (m.Kind == projection.CaughtUpMessage) {
					errs <- nil
					return
				}
			}
		}()
	}
	for range subs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// drainIDs reads sub until it has caught up, returning the IDs of its events.
func drainIDs(ctx context.Context, t *testing.T, sub projection.Subscription) []string {
	t.Helper()
	var ids []string
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("own subscription: %v", err)
		}
		switch m.Kind {
		case projection.EventMessage:
			ids = append(ids, m.Event.ID)
		case projection.CaughtUpMessage:
			return ids
		}
	}
}
