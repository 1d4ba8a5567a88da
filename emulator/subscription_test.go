package emulator

import (
	"context"
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

// subMsg is one subscription message in a compact, comparable form.
type subMsg struct {
	kind   string // "event", "checkpoint", "caughtup", "dropped"
	typ    string
	stream string
	rev    uint64
	pos    uint64
	hasPos bool // caught-up: a revision or position was given
	err    error
}

func (m subMsg) String() string {
	switch m.kind {
	case "event":
		return fmt.Sprintf("event(%s/%s@%d p%d)", m.stream, m.typ, m.rev, m.pos)
	case "dropped":
		return fmt.Sprintf("dropped(%v)", m.err)
	default:
		return fmt.Sprintf("%s(%d,%v)", m.kind, m.pos, m.hasPos)
	}
}

// next receives one message from an official-client subscription.
func next(t *testing.T, sub *kurrentdb.Subscription) subMsg {
	t.Helper()
	e := sub.Recv()
	switch {
	case e.EventAppeared != nil:
		ev := e.EventAppeared.OriginalEvent()
		return subMsg{kind: "event", typ: ev.EventType, stream: ev.StreamID, rev: ev.EventNumber, pos: ev.Position.Commit}
	case e.CheckPointReached != nil:
		if e.CheckPointReached.Commit != e.CheckPointReached.Prepare {
			t.Fatalf("checkpoint commit %d != prepare %d", e.CheckPointReached.Commit, e.CheckPointReached.Prepare)
		}
		return subMsg{kind: "checkpoint", pos: e.CheckPointReached.Commit}
	case e.CaughtUp != nil:
		if e.CaughtUp.Date.IsZero() || time.Since(e.CaughtUp.Date) > time.Minute {
			t.Fatalf("caught-up timestamp %v", e.CaughtUp.Date)
		}
		m := subMsg{kind: "caughtup"}
		if e.CaughtUp.StreamRevision != nil {
			m.pos, m.hasPos = *e.CaughtUp.StreamRevision, true
		} else if e.CaughtUp.Position != nil {
			m.pos, m.hasPos = e.CaughtUp.Position.Commit, true
		}
		return m
	case e.SubscriptionDropped != nil:
		return subMsg{kind: "dropped", err: e.SubscriptionDropped.Error}
	}
	t.Fatalf("unexpected subscription event %+v", e)
	return subMsg{}
}

// until receives messages up to and including the first of kind.
func until(t *testing.T, sub *kurrentdb.Subscription, kind string) []subMsg {
	t.Helper()
	var out []subMsg
	for {
		m := next(t, sub)
		out = append(out, m)
		if m.kind == kind {
			return out
		}
		if m.kind == "dropped" {
			t.Fatalf("subscription dropped waiting for %s: %v (after %v)", kind, m.err, out)
		}
	}
}

func expect(t *testing.T, got subMsg, kind string, pos uint64, hasPos bool) {
	t.Helper()
	if got.kind != kind || got.pos != pos || got.hasPos != hasPos {
		t.Fatalf("got %v, want %s(%d,%v)", got, kind, pos, hasPos)
	}
}

func TestSubscribeToStreamSequencing(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	stAppend(t, f.store, "s1", expNoStream, stEvents(10, "E")...)

	fromStart, err := f.client.SubscribeToStream(ctx, "s1", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fromStart.Close()
	msgs := until(t, fromStart, "caughtup")
	if len(msgs) != 11 {
		t.Fatalf("catch-up = %v, want 10 events then caught-up", msgs)
	}
	for i := 0; i < 10; i++ {
		if msgs[i].kind != "event" || msgs[i].rev != uint64(i) {
			t.Fatalf("message %d = %v", i, msgs[i])
		}
	}
	expect(t, msgs[10], "caughtup", 9, true)

	fromRev, err := f.client.SubscribeToStream(ctx, "s1", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Revision(4)})
	if err != nil {
		t.Fatal(err)
	}
	defer fromRev.Close()
	msgs = until(t, fromRev, "caughtup")
	if len(msgs) != 6 || msgs[0].rev != 5 {
		t.Fatalf("from revision 4 (exclusive) = %v", msgs)
	}
	fromEnd, err := f.client.SubscribeToStream(ctx, "s1", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fromEnd.Close()
	expect(t, next(t, fromEnd), "caughtup", 9, true)

	missing, err := f.client.SubscribeToStream(ctx, "later", kurrentdb.SubscribeToStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	expect(t, next(t, missing), "caughtup", 0, false)

	// Live.
	wr, err := f.client.AppendToStream(ctx, "s1", kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.Revision(9)},
		kurrentdb.EventData{EventType: "Live", ContentType: kurrentdb.ContentTypeJson, Data: []byte("{}")})
	if err != nil || wr.NextExpectedVersion != 10 {
		t.Fatalf("append at revision 9: %+v, %v", wr, err)
	}
	for _, sub := range []*kurrentdb.Subscription{fromStart, fromRev, fromEnd} {
		if m := next(t, sub); m.kind != "event" || m.rev != 10 || m.typ != "Live" || m.pos != wr.CommitPosition {
			t.Fatalf("live event = %v, want revision 10 at %d", m, wr.CommitPosition)
		}
	}
	stAppend(t, f.store, "later", expNoStream, stEvents(1, "First")...)
	if m := next(t, missing); m.kind != "event" || m.rev != 0 || m.stream != "later" {
		t.Fatalf("live event on a new stream = %v", m)
	}
}

func TestSubscribeToStreamHonoursTruncation(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "tr", expNoStream, stEvents(5, "E")...)
	if _, err := f.store.Delete("tr", expAny); err != nil {
		t.Fatal(err)
	}
	sub, err := f.client.SubscribeToStream(rdCtx(t), "tr", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// A soft-deleted stream has nothing to catch up, and its old events
	// never come back live.
	expect(t, next(t, sub), "caughtup", 0, false)
	stAppend(t, f.store, "tr", expAny, stEvents(1, "New")...)
	if m := next(t, sub); m.kind != "event" || m.rev != 5 || m.typ != "New" {
		t.Fatalf("after undelete = %v, want the new event 5", m)
	}
}

func TestSubscribeToStreamTombstone(t *testing.T) {
	f := newReadFixture(t, Options{})
	ctx := rdCtx(t)
	stAppend(t, f.store, "doomed", expNoStream, stEvents(2, "E")...)
	sub, err := f.client.SubscribeToStream(ctx, "doomed", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	expect(t, next(t, sub), "caughtup", 1, true)
	if _, err := f.store.Tombstone("doomed", expAny); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); m.kind != "event" || m.typ != "$streamDeleted" || m.rev != 1<<63-1 {
		t.Fatalf("tombstone delivery = %v", m)
	}
	if m := next(t, sub); m.kind != "dropped" || rdErrorCode(m.err) != kurrentdb.ErrorCodeStreamDeleted {
		t.Fatalf("after the tombstone = %v, want dropped with ErrorCodeStreamDeleted", m)
	}
	_, err = f.client.SubscribeToStream(ctx, "doomed", kurrentdb.SubscribeToStreamOptions{})
	if rdErrorCode(err) != kurrentdb.ErrorCodeStreamDeleted {
		t.Fatalf("subscribe to a tombstoned stream: %v, want ErrorCodeStreamDeleted", err)
	}
}

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

// rdFilteredSub subscribes to $all with a raw request: filter on event type
// prefix, window max, and multiplier.
func rdFilteredSub(t *testing.T, ctx context.Context, f *readFixture, prefix string, window, multiplier uint32) streams.Streams_ReadClient {
	t.Helper()
	req := rdAllReq(0, &streams.ReadReq_Options_FilterOptions{
		Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{
			Prefix: []string{prefix}}},
		Window:                       &streams.ReadReq_Options_FilterOptions_Max{Max: window},
		CheckpointIntervalMultiplier: multiplier,
	})
	req.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	return rdSubscribe(t, ctx, f, req)
}

// rawMsg converts a raw ReadResp to a subMsg.
func rawMsg(t *testing.T, rc streams.Streams_ReadClient) subMsg {
	t.Helper()
	m, err := rc.Recv()
	if err != nil {
		return subMsg{kind: "dropped", err: err}
	}
	switch c := m.Content.(type) {
	case *streams.ReadResp_Event:
		ev := c.Event.GetEvent()
		return subMsg{kind: "event", typ: ev.Metadata["type"], stream: string(ev.StreamIdentifier.StreamName), rev: ev.StreamRevision, pos: ev.CommitPosition}
	case *streams.ReadResp_Checkpoint_:
		if c.Checkpoint.Timestamp == nil {
			t.Fatalf("checkpoint without timestamp")
		}
		return subMsg{kind: "checkpoint", pos: c.Checkpoint.CommitPosition}
	case *streams.ReadResp_CaughtUp_:
		return subMsg{kind: "caughtup", pos: c.CaughtUp.GetPosition().GetCommitPosition(), hasPos: c.CaughtUp.Position != nil}
	}
	t.Fatalf("unexpected message %T", m.Content)
	return subMsg{}
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
