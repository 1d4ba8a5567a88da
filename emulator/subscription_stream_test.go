package emulator

// Tests of subscriptions to one stream: sequencing, truncation and tombstones.

import (
	"testing"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

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
