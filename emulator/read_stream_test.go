package emulator

// Tests of reading one stream: both directions, paging, missing and deleted streams,
// metadata visibility and the positions sent for compatibility.

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestReadStreamForwardsAndBackwards(t *testing.T) {
	clock := time.Date(2026, 3, 4, 5, 6, 7, 800, time.UTC)
	f := newReadFixture(t, Options{Now: func() time.Time { return clock }})
	evs := stEvents(20, "OrderPlaced")
	evs[3].IsJSON = false
	evs[3].Metadata = []byte("user-meta")
	stAppend(t, f.store, "orders", expNoStream, evs...)

	got, err := f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.Start{}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	rdWantRevisions(t, "forwards from start", got, rdSeq(0, 4))
	st := f.store.streams["orders"]
	for i, e := range got {
		r := st.events[i]
		ev := e.Event
		ct := "application/json"
		if i == 3 {
			ct = "application/octet-stream"
		}
		if ev.EventID != evs[i].ID || ev.EventType != "OrderPlaced" || ev.ContentType != ct || ev.StreamID != "orders" ||
			!bytes.Equal(ev.Data, evs[i].Data) || !bytes.Equal(ev.UserMetadata, evs[i].Metadata) ||
			!ev.CreatedDate.Equal(clock.Truncate(100*time.Nanosecond)) ||
			ev.Position.Commit != r.pos || ev.Position.Prepare != r.pos || e.Commit == nil || *e.Commit != r.pos {
			t.Fatalf("event %d = %+v (commit %v), want id %s at %d", i, ev, e.Commit, evs[i].ID, r.pos)
		}
		if len(ev.SystemMetadata) != 3 {
			t.Fatalf("system metadata %v, want type, created and content-type", ev.SystemMetadata)
		}
	}
	got, _ = f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(10)}, 1000)
	rdWantRevisions(t, "forwards from 10", got, rdSeq(10, 19))
	got, _ = f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(25)}, 10)
	rdWantRevisions(t, "forwards past the end", got, nil)
	got, _ = f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 3)
	rdWantRevisions(t, "backwards from end", got, rdSeq(19, 17))
	got, _ = f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(5), Direction: kurrentdb.Backwards}, 100)
	rdWantRevisions(t, "backwards from 5", got, rdSeq(5, 0))
	got, _ = f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(500), Direction: kurrentdb.Backwards}, 2)
	rdWantRevisions(t, "backwards from beyond the end", got, rdSeq(19, 18))
	got, _ = f.readStream(t, "orders", kurrentdb.ReadStreamOptions{From: kurrentdb.End{}}, 2)
	rdWantRevisions(t, "forwards from end", got, nil)
}

func TestReadStreamPagesLargeCounts(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "big", expNoStream, stEvents(1500, "E")...)
	got, err := f.readStream(t, "big", kurrentdb.ReadStreamOptions{}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rdWantRevisions(t, "1024 of 1500", got, rdSeq(0, 1023))
	got, _ = f.readStream(t, "big", kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1<<40)
	rdWantRevisions(t, "all backwards", got, rdSeq(1499, 0))
}

func TestReadStreamNotFoundAndDeleted(t *testing.T) {
	f := newReadFixture(t, Options{})
	_, err := f.readStream(t, "nope", kurrentdb.ReadStreamOptions{}, 10)
	if rdErrorCode(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("missing stream: %v, want ErrorCodeResourceNotFound", err)
	}
	// Metadata alone does not make a stream readable.
	stAppend(t, f.store, "$$metaonly", expAny, stEvent(metadataEventType, `{}`))
	if _, err := f.readStream(t, "metaonly", kurrentdb.ReadStreamOptions{}, 10); rdErrorCode(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("metadata-only stream: %v, want ErrorCodeResourceNotFound", err)
	}
	stAppend(t, f.store, "soft", expNoStream, stEvents(3, "E")...)
	if _, err := f.store.Delete("soft", expAny); err != nil {
		t.Fatal(err)
	}
	if _, err := f.readStream(t, "soft", kurrentdb.ReadStreamOptions{}, 10); rdErrorCode(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("soft-deleted stream: %v, want ErrorCodeResourceNotFound", err)
	}
	// Undelete: reads start at the new events.
	stAppend(t, f.store, "soft", expAny, stEvents(2, "E")...)
	got, _ := f.readStream(t, "soft", kurrentdb.ReadStreamOptions{}, 10)
	rdWantRevisions(t, "undeleted", got, rdSeq(3, 4))

	stAppend(t, f.store, "hard", expNoStream, stEvents(3, "E")...)
	if _, err := f.store.Tombstone("hard", expAny); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hard", "$$hard"} {
		_, err := f.readStream(t, name, kurrentdb.ReadStreamOptions{}, 10)
		if rdErrorCode(err) != kurrentdb.ErrorCodeStreamDeleted {
			t.Fatalf("read %s after tombstone: %v, want ErrorCodeStreamDeleted", name, err)
		}
	}
	// Raw: the status and trailers of the deleted error.
	rc, err := f.raw.Read(rdCtx(t), rdStreamReq("hard", false, 10))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rc.Recv()
	if status.Code(err) != codes.FailedPrecondition || rc.Trailer().Get("exception")[0] != "stream-deleted" ||
		rc.Trailer().Get("stream-name")[0] != "hard" {
		t.Fatalf("deleted read: %v, trailers %v", err, rc.Trailer())
	}
}

func TestReadStreamMetadataVisibility(t *testing.T) {
	var now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := &rdClock{t: now}
	f := newReadFixture(t, Options{Now: clock.Now})
	ctx := rdCtx(t)
	stAppend(t, f.store, "vis", expNoStream, stEvents(10, "E")...)
	set := func(m kurrentdb.StreamMetadata) {
		t.Helper()
		if _, err := f.client.SetStreamMetadata(ctx, "vis", kurrentdb.AppendToStreamOptions{}, m); err != nil {
			t.Fatalf("SetStreamMetadata: %v", err)
		}
	}
	var m kurrentdb.StreamMetadata
	m.SetMaxCount(3)
	set(m)
	got, _ := f.readStream(t, "vis", kurrentdb.ReadStreamOptions{}, 100)
	rdWantRevisions(t, "$maxCount 3", got, rdSeq(7, 9))
	got, _ = f.readStream(t, "vis", kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 100)
	rdWantRevisions(t, "$maxCount 3 backwards", got, rdSeq(9, 7))

	m = kurrentdb.StreamMetadata{}
	m.SetTruncateBefore(8)
	m.AddCustomProperty("owner", "ops")
	set(m)
	got, _ = f.readStream(t, "vis", kurrentdb.ReadStreamOptions{}, 100)
	rdWantRevisions(t, "$tb 8", got, rdSeq(8, 9))
	// The metastream keeps only its latest event: GetStreamMetadata sees it.
	back, err := f.client.GetStreamMetadata(ctx, "vis", kurrentdb.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tb := back.TruncateBefore(); tb == nil || *tb != 8 || back.CustomProperty("owner") != "ops" {
		t.Fatalf("GetStreamMetadata = %+v", back)
	}
	meta, _ := f.readStream(t, "$$vis", kurrentdb.ReadStreamOptions{}, 100)
	rdWantRevisions(t, "metastream", meta, rdSeq(1, 1))

	m = kurrentdb.StreamMetadata{}
	m.SetMaxAge(time.Second)
	set(m)
	clock.Add(2 * time.Second)
	got, err = f.readStream(t, "vis", kurrentdb.ReadStreamOptions{}, 100)
	if err != nil || len(got) != 0 {
		t.Fatalf("all events expired: %d events, %v; want success with none", len(got), err)
	}
	// $maxAge and $tb do not hide events from $all.
	all := f.readAll(t, kurrentdb.ReadAllOptions{}, 1000)
	n := 0
	for _, e := range all {
		if e.Event.StreamID == "vis" {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("$all has %d events of the expired stream, want 10", n)
	}
}

func TestReadStreamCompatibilityPositions(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "compat", expNoStream, stEvents(5, "E")...)
	read := func(from uint64, backwards bool) []string {
		t.Helper()
		req := rdStreamReq("compat", backwards, 100)
		req.Options.GetStream().RevisionOption = &streams.ReadReq_Options_StreamOptions_Revision{Revision: from}
		req.Options.ControlOption = &streams.ReadReq_Options_ControlOption{Compatibility: 1}
		rc, err := f.raw.Read(rdCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := rdRecvAll(t, rc)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range msgs {
			switch c := m.Content.(type) {
			case *streams.ReadResp_Event:
				out = append(out, fmt.Sprint(c.Event.Event.StreamRevision))
			case *streams.ReadResp_FirstStreamPosition:
				out = append(out, fmt.Sprint("first:", c.FirstStreamPosition))
			case *streams.ReadResp_LastStreamPosition:
				out = append(out, fmt.Sprint("last:", c.LastStreamPosition))
			default:
				t.Fatalf("unexpected %T", m.Content)
			}
		}
		return out
	}
	if got := fmt.Sprint(read(3, false)); got != "[3 4 last:4]" {
		t.Fatalf("forwards from 3: %s", got)
	}
	if got := fmt.Sprint(read(9, false)); got != "[first:5 last:4]" {
		t.Fatalf("forwards past the end: %s", got)
	}
	if got := fmt.Sprint(read(1, true)); got != "[1 0 last:4]" {
		t.Fatalf("backwards from 1: %s", got)
	}
}
