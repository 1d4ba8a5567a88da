package emulator

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// TestSubscriptionsUnderConcurrentAppends runs writers and subscribers at
// once: every subscriber must see exactly the log's events, in log order,
// without gaps or duplicates, whether they arrived in catch-up or live.
func TestSubscriptionsUnderConcurrentAppends(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	stAppend(t, f.store, "shared", expNoStream, stEvents(50, "Early")...)

	const writers, appends = 4, 60
	total := 0
	for w := 0; w < writers; w++ {
		for i := 0; i < appends; i++ {
			total += 1 + i%3
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			for i := 0; i < appends; i++ {
				typ := "Noise"
				if i%4 == 0 {
					typ = "Match"
				}
				evs := stEvents(1+i%3, typ)
				if _, err := f.store.Append(StreamAppend{Stream: "shared", Expected: expAny, Events: evs}); err != nil {
					errs <- err
					return
				}
				if _, err := f.store.Append(StreamAppend{Stream: fmt.Sprintf("w-%d", w), Expected: expAny, Events: stEvents(1, "Side")}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}

	all, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	filtered, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{},
		Filter: &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Prefixes: []string{"Match"}}, MaxSearchWindow: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Close()
	stream, err := f.client.SubscribeToStream(ctx, "shared", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Expected sequences, from the store.
	var allPos, matchPos []uint64
	for _, r := range f.store.recs {
		allPos = append(allPos, r.pos)
		if r.typ == "Match" {
			matchPos = append(matchPos, r.pos)
		}
	}
	streamLen := 50 + total

	collect := func(sub *kurrentdb.Subscription, want int) ([]subMsg, []uint64) {
		var msgs []subMsg
		var got []uint64
		for len(got) < want {
			m := next(t, sub)
			if m.kind == "dropped" {
				t.Fatalf("dropped: %v", m.err)
			}
			msgs = append(msgs, m)
			if m.kind == "event" {
				got = append(got, m.pos)
			}
		}
		return msgs, got
	}
	_, got := collect(all, len(allPos))
	if fmt.Sprint(got) != fmt.Sprint(allPos) {
		t.Fatalf("$all subscriber saw %d events out of log order or with gaps", len(got))
	}
	msgs, got := collect(filtered, len(matchPos))
	if fmt.Sprint(got) != fmt.Sprint(matchPos) {
		t.Fatalf("filtered subscriber saw %v, want %v", got, matchPos)
	}
	checkFilteredCatchUp(t, msgs)
	var revs []uint64
	for len(revs) < streamLen {
		m := next(t, stream)
		if m.kind == "event" {
			revs = append(revs, m.rev)
		}
	}
	for i, r := range revs {
		if r != uint64(i) {
			t.Fatalf("stream subscriber: revision %d at index %d", r, i)
		}
	}
}
