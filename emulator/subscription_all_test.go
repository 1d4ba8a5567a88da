package emulator

// Tests of subscriptions to $all: unfiltered and filtered catch-up, filters and the
// checkpoint interval.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

func TestSubscribeToAllUnfiltered(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	stAppend(t, f.store, "u1", expNoStream, stEvents(5, "E")...)
	n := len(f.store.recs)
	last := f.store.recs[n-1].pos

	sub, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs := until(t, sub, "caughtup")
	if len(msgs) != n+1 || msgs[0].stream != "$$$scavenges" {
		t.Fatalf("catch-up from start = %v, want all %d records", msgs, n)
	}
	expect(t, msgs[n], "caughtup", last, true)

	mid := f.store.recs[2].pos
	fromPos, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Position{Commit: mid, Prepare: mid}})
	if err != nil {
		t.Fatal(err)
	}
	defer fromPos.Close()
	msgs = until(t, fromPos, "caughtup")
	if len(msgs) != n-3+1 || msgs[0].pos != f.store.recs[3].pos {
		t.Fatalf("from position %d (exclusive) = %v", mid, msgs)
	}
	beyond := last + 1000
	fromBeyond, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Position{Commit: beyond, Prepare: beyond}})
	if err != nil {
		t.Fatal(err)
	}
	defer fromBeyond.Close()
	expect(t, next(t, fromBeyond), "caughtup", beyond, true)

	fromEnd, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fromEnd.Close()
	expect(t, next(t, fromEnd), "caughtup", last, true)

	res := stAppend(t, f.store, "u2", expNoStream, stEvents(1, "Live")...)
	for _, s := range []*kurrentdb.Subscription{sub, fromPos, fromEnd} {
		if m := next(t, s); m.kind != "event" || m.pos != res.Position || m.typ != "Live" {
			t.Fatalf("live = %v, want Live at %d", m, res.Position)
		}
	}
}

// checkFilteredCatchUp checks the checkpoint invariant consumers rely on,
// with checkpoints read as exclusive: after a checkpoint at C no event
// before C arrives (an event exactly at C may: the #4970 quirk, see
// subscribeAll), checkpoints increase, and a checkpoint never lies behind
// an event already delivered.
func checkFilteredCatchUp(t *testing.T, msgs []subMsg) {
	t.Helper()
	var lastCp, lastEv uint64
	for i, m := range msgs {
		switch m.kind {
		case "checkpoint":
			if m.pos <= lastCp || m.pos < lastEv {
				t.Fatalf("checkpoint %d at %d after checkpoint %d / event %d: %v", i, m.pos, lastCp, lastEv, msgs)
			}
			lastCp = m.pos
		case "event":
			if m.pos < lastCp {
				t.Fatalf("event at %d after checkpoint %d: %v", m.pos, lastCp, msgs)
			}
			lastEv = m.pos
		}
	}
}

func TestSubscribeToAllFilteredSequencingAndQuirk(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	for i := 0; i < 5; i++ {
		stAppend(t, f.store, "noise", expAny, stEvents(20, "Noise")...)
		stAppend(t, f.store, "order-"+fmt.Sprint(i), expNoStream, stEvent("OrderPlaced", "{}"))
	}
	sub, err := f.client.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{
		From:   kurrentdb.Start{},
		Filter: &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Prefixes: []string{"Order"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs := until(t, sub, "caughtup")
	checkFilteredCatchUp(t, msgs)
	var evs []subMsg
	cps := 0
	for _, m := range msgs {
		switch m.kind {
		case "event":
			evs = append(evs, m)
		case "checkpoint":
			cps++
		}
	}
	if len(evs) != 5 {
		t.Fatalf("filtered catch-up delivered %v (%v)", evs, msgs)
	}
	if cps < 3 {
		t.Fatalf("filtered catch-up over 106 records sent %d checkpoints, want one per 32 considered: %v", cps, msgs)
	}
	// The end of catch-up: a checkpoint, then caught-up at the same position,
	// which is the writer's end offset (#4970).
	end, _ := f.store.Head()
	cp, cu := msgs[len(msgs)-2], msgs[len(msgs)-1]
	expect(t, cp, "checkpoint", end, false)
	expect(t, cu, "caughtup", end, true)

	// The quirk: the next matching event lands exactly at the checkpoint.
	res := stAppend(t, f.store, "order-new", expNoStream, stEvent("OrderPlaced", "{}"))
	if res.Position != cp.pos {
		t.Fatalf("event appended after the catch-up checkpoint %d landed at %d, want exactly the checkpoint", cp.pos, res.Position)
	}
	if m := next(t, sub); m.kind != "event" || m.pos != cp.pos {
		t.Fatalf("live = %v, want the event at the checkpoint %d", m, cp.pos)
	}
}

func TestSubscribeToAllFilteredRegex(t *testing.T) {
	f := newReadFixture(t, Options{TLSListen: "127.0.0.1:0"})
	ctx := rdCtx(t)
	_ = ctx
	stAppend(t, f.store, "acct-1", expNoStream, stEvent("Opened", "{}"), stEvent("AccountSnapshot", "{}"), stEvent("Closed", "{}"))
	stAppend(t, f.store, "$system", expNoStream, stEvent("$internal", "{}"), stEvent("SystemThing", "{}"))
	cases := []struct {
		name   string
		filter *kurrentdb.SubscriptionFilter
		want   string
	}{
		{"lookahead", &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Regex: `^(?!(\$.+$|.*Snapshot$))`},
			"Opened,Closed,SystemThing"},
		{"exclude system events", kurrentdb.ExcludeSystemEventsFilter(), "Opened,AccountSnapshot,Closed,SystemThing"},
		{"stream prefix", &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Prefixes: []string{"$sys"}},
			"$internal,SystemThing"},
		{"stream regex", &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Regex: `^\$user-`},
			"$UserCreated,$UserCreated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := f.client.SubscribeToAll(rdCtx(t), kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{}, Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			var got []string
			for _, m := range until(t, sub, "caughtup") {
				if m.kind == "event" {
					got = append(got, m.typ)
				}
			}
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("got %v, want %s", got, tc.want)
			}
		})
	}
}

func TestSubscribeToAllFilteredCheckpointInterval(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	seeds := len(f.store.recs)
	stAppend(t, f.store, "noise", expNoStream, stEvents(40-seeds, "Noise")...)
	// Window 4 × multiplier 2: a checkpoint every 8 considered records.
	rc := rdFilteredSub(t, ctx, f, "Order", 4, 2)
	var msgs []subMsg
	for {
		m := rawMsg(t, rc)
		msgs = append(msgs, m)
		if m.kind == "caughtup" || m.kind == "dropped" {
			break
		}
	}
	checkFilteredCatchUp(t, msgs)
	// 40 records in pages of 4: a checkpoint after pages 2, 4, 6 and 8, each
	// at the start of its page; page 10 reaches the end of the log, which
	// ends the catch-up with the end checkpoint.
	var want []subMsg
	for page := 2; page <= 8; page += 2 {
		want = append(want, subMsg{kind: "checkpoint", pos: f.store.recs[(page-1)*4].pos})
	}
	end, _ := f.store.Head()
	want = append(want, subMsg{kind: "checkpoint", pos: end}, subMsg{kind: "caughtup", pos: end, hasPos: true})
	if fmt.Sprint(msgs) != fmt.Sprint(want) {
		t.Fatalf("catch-up\n got %v\nwant %v", msgs, want)
	}

	// Live: every committed record counts; a checkpoint at the 8th and 16th.
	n0 := len(f.store.recs)
	stAppend(t, f.store, "noise", expAny, stEvents(20, "Noise")...)
	res := stAppend(t, f.store, "order-1", expNoStream, stEvent("OrderPlaced", "{}"))
	for _, w := range []subMsg{
		{kind: "checkpoint", pos: f.store.recs[n0+7].pos},
		{kind: "checkpoint", pos: f.store.recs[n0+15].pos},
		{kind: "event", typ: "OrderPlaced", stream: "order-1", pos: res.Position},
	} {
		if m := rawMsg(t, rc); fmt.Sprint(m) != fmt.Sprint(w) {
			t.Fatalf("live: got %v, want %v", m, w)
		}
	}
}
