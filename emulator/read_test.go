package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// readFixture is an emulator on loopback with the official client and a raw
// gRPC Streams client connected to its plaintext listener.
type readFixture struct {
	srv    *Server
	store  *Store
	client *kurrentdb.Client
	raw    streams.StreamsClient
}

func newReadFixture(t testing.TB, opts Options) *readFixture {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	srv, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	conf, err := kurrentdb.ParseConnectionString(srv.URI())
	if err != nil {
		t.Fatalf("parse %q: %v", srv.URI(), err)
	}
	c, err := kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(17<<20)))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return &readFixture{srv: srv, store: srv.stores[0], client: c, raw: streams.NewStreamsClient(cc)}
}

func rdCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readStream reads a stream with the official client and returns its events.
func (f *readFixture) readStream(t testing.TB, stream string, opts kurrentdb.ReadStreamOptions, count uint64) ([]*kurrentdb.ResolvedEvent, error) {
	t.Helper()
	return readToEnd(f.client.ReadStream(rdCtx(t), stream, opts, count))
}

// readAll reads $all with the official client and returns its events; errors fail t.
func (f *readFixture) readAll(t testing.TB, opts kurrentdb.ReadAllOptions, count uint64) []*kurrentdb.ResolvedEvent {
	t.Helper()
	out, err := readToEnd(f.client.ReadAll(rdCtx(t), opts, count))
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return out
}

// readToEnd receives the events of rs (whose opening failed with err, if err is set) until
// its end, and closes it.
func readToEnd(rs *kurrentdb.ReadStream, err error) ([]*kurrentdb.ResolvedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*kurrentdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func rdRevisions(evs []*kurrentdb.ResolvedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.OriginalEvent().EventNumber
	}
	return out
}

func rdSeq(from, to int) []uint64 {
	var out []uint64
	if from <= to {
		for i := from; i <= to; i++ {
			out = append(out, uint64(i))
		}
	} else {
		for i := from; i >= to; i-- {
			out = append(out, uint64(i))
		}
	}
	return out
}

func rdWantRevisions(t *testing.T, what string, evs []*kurrentdb.ResolvedEvent, want []uint64) {
	t.Helper()
	if got := rdRevisions(evs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: rdRevisions %v, want %v", what, got, want)
	}
}

func rdErrorCode(err error) kurrentdb.ErrorCode {
	var e *kurrentdb.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return -1
}

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

// rdClock is a settable clock.
type rdClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *rdClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *rdClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestReadAllPositions(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "a", expNoStream, stEvents(5, "E")...)
	stAppend(t, f.store, "b", expNoStream, stEvents(5, "E")...)
	all := f.readAll(t, kurrentdb.ReadAllOptions{}, 1000)
	if len(all) != len(f.store.recs) {
		t.Fatalf("$all from start has %d events, want %d", len(all), len(f.store.recs))
	}
	if all[0].Event.StreamID != "$$$scavenges" || all[0].Event.EventType != "$metadata" {
		t.Fatalf("first $all event = %s/%s, want the seed", all[0].Event.StreamID, all[0].Event.EventType)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Event.Position.Commit <= all[i-1].Event.Position.Commit {
			t.Fatalf("$all positions not increasing at %d", i)
		}
	}
	// Forwards from P is inclusive.
	p := all[4].Event.Position
	fwd := f.readAll(t, kurrentdb.ReadAllOptions{From: p}, 3)
	if fwd[0].Event.Position != p || fwd[1].Event.Position.Commit <= p.Commit || len(fwd) != 3 {
		t.Fatalf("forwards from %v: %v", p, fwd[0].Event.Position)
	}
	// Backwards from P is exclusive.
	back := f.readAll(t, kurrentdb.ReadAllOptions{From: p, Direction: kurrentdb.Backwards}, 100)
	if len(back) != 4 || back[0].Event.Position != all[3].Event.Position {
		t.Fatalf("backwards from %v: %d events starting %v", p, len(back), back[0].Event.Position)
	}
	back = f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 2)
	if back[0].Event.Position != all[len(all)-1].Event.Position || back[1].Event.Position != all[len(all)-2].Event.Position {
		t.Fatalf("backwards from end starts at %v", back[0].Event.Position)
	}
	if got := f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}}, 10); len(got) != 0 {
		t.Fatalf("forwards from end returned %d events", len(got))
	}
	// Tombstones, soft deletes and metadata events are in $all.
	if _, err := f.store.Delete("a", expAny); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Tombstone("b", expAny); err != nil {
		t.Fatal(err)
	}
	last := f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 2)
	if e := last[0].Event; e.EventType != "$streamDeleted" || e.EventNumber != 1<<63-1 || e.StreamID != "b" {
		t.Fatalf("tombstone in $all = %+v", e)
	}
	if e := last[1].Event; e.EventType != "$metadata" || e.StreamID != "$$a" || string(e.Data) != `{"$tb":9223372036854775807}` {
		t.Fatalf("soft delete in $all = %+v", e)
	}
}

func TestReadAllDefaultFilterHidesSystemRecords(t *testing.T) {
	f := newReadFixture(t, Options{})
	for _, name := range []string{"$epoch-information", "$persistentsubscription-$all::g-checkpoint",
		"$persistentsubscription-$all::g-parked", "$persistentsubscription-s::g-parked", "$ce-x"} {
		stAppend(t, f.store, name, expAny, stEvent("X", "{}"))
	}
	seen := map[string]bool{}
	for _, e := range f.readAll(t, kurrentdb.ReadAllOptions{}, 1000) {
		seen[e.Event.StreamID] = true
	}
	for name, want := range map[string]bool{"$epoch-information": false, "$persistentsubscription-$all::g-checkpoint": false,
		"$persistentsubscription-$all::g-parked": false, "$persistentsubscription-s::g-parked": true, "$ce-x": true} {
		if seen[name] != want {
			t.Fatalf("$all shows %s = %v, want %v", name, seen[name], want)
		}
	}
}

func TestReadAllOneThousandEventAppend(t *testing.T) {
	f := newReadFixture(t, Options{})
	res := stAppend(t, f.store, "thousand", expNoStream, stEvents(1000, "E")...)
	back := f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 1000)
	if len(back) != 1000 || back[0].Event.Position.Commit != res.Position || back[999].Event.EventNumber != 0 {
		t.Fatalf("backwards read of a 1000-event append: %d events", len(back))
	}
}

// Raw request builders for what the official client cannot express.

func rdStreamReq(stream string, backwards bool, count uint64) *streams.ReadReq {
	dir := streams.ReadReq_Options_Forwards
	if backwards {
		dir = streams.ReadReq_Options_Backwards
	}
	return &streams.ReadReq{Options: &streams.ReadReq_Options{
		StreamOption: &streams.ReadReq_Options_Stream{Stream: &streams.ReadReq_Options_StreamOptions{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
			RevisionOption:   &streams.ReadReq_Options_StreamOptions_Start{},
		}},
		ReadDirection: dir,
		CountOption:   &streams.ReadReq_Options_Count{Count: count},
		FilterOption:  &streams.ReadReq_Options_NoFilter{},
		UuidOption:    &streams.ReadReq_Options_UUIDOption{Content: &streams.ReadReq_Options_UUIDOption_Structured{}},
	}}
}

func rdAllReq(count uint64, filter *streams.ReadReq_Options_FilterOptions) *streams.ReadReq {
	req := &streams.ReadReq{Options: &streams.ReadReq_Options{
		StreamOption: &streams.ReadReq_Options_All{All: &streams.ReadReq_Options_AllOptions{
			AllOption: &streams.ReadReq_Options_AllOptions_Start{},
		}},
		CountOption:  &streams.ReadReq_Options_Count{Count: count},
		FilterOption: &streams.ReadReq_Options_NoFilter{},
		UuidOption:   &streams.ReadReq_Options_UUIDOption{Content: &streams.ReadReq_Options_UUIDOption_Structured{}},
	}}
	if filter != nil {
		req.Options.FilterOption = &streams.ReadReq_Options_Filter{Filter: filter}
	}
	return req
}

func rdTypeRegex(re string) *streams.ReadReq_Options_FilterOptions {
	return &streams.ReadReq_Options_FilterOptions{
		Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{Regex: re}},
		Window: &streams.ReadReq_Options_FilterOptions_Count{}, CheckpointIntervalMultiplier: 1,
	}
}

func rdRecvAll(t *testing.T, rc streams.Streams_ReadClient) ([]*streams.ReadResp, error) {
	t.Helper()
	var out []*streams.ReadResp
	for {
		m, err := rc.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

func TestReadAllFiltered(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "order-1", expNoStream, stEvent("OrderPlaced", "{}"), stEvent("OrderSnapshot", "{}"), stEvent("OrderShipped", "{}"))
	stAppend(t, f.store, "cust-1", expNoStream, stEvent("CustomerCreated", "{}"))
	cases := []struct {
		name   string
		filter *streams.ReadReq_Options_FilterOptions
		want   []string
	}{
		{"lookahead excludes system and snapshots", rdTypeRegex(`^(?!(\$.+$|.*Snapshot$))`),
			[]string{"OrderPlaced", "OrderShipped", "CustomerCreated"}},
		{"unanchored search", rdTypeRegex(`Ship`), []string{"OrderShipped"}},
		{"type prefixes", &streams.ReadReq_Options_FilterOptions{
			Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{
				Prefix: []string{"Customer", "OrderP"}}},
			Window: &streams.ReadReq_Options_FilterOptions_Max{Max: 5}, CheckpointIntervalMultiplier: 1},
			[]string{"OrderPlaced", "CustomerCreated"}},
		{"stream regex", &streams.ReadReq_Options_FilterOptions{
			Filter: &streams.ReadReq_Options_FilterOptions_StreamIdentifier{StreamIdentifier: &streams.ReadReq_Options_FilterOptions_Expression{
				Regex: `^cust-\d+$`}},
			Window: &streams.ReadReq_Options_FilterOptions_Count{}, CheckpointIntervalMultiplier: 1},
			[]string{"CustomerCreated"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := f.raw.Read(rdCtx(t), rdAllReq(100, tc.filter))
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := rdRecvAll(t, rc)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				ev := m.GetEvent()
				if ev == nil {
					t.Fatalf("finite filtered read sent %T", m.Content)
				}
				got = append(got, ev.Event.Metadata["type"])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadRequestValidation(t *testing.T) {
	f := newReadFixture(t, Options{})
	noUUID := rdStreamReq("x", false, 1)
	noUUID.Options.UuidOption = nil
	backSub := rdAllReq(0, nil)
	backSub.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	backSub.Options.ReadDirection = streams.ReadReq_Options_Backwards
	streamFilter := rdStreamReq("x", false, 1)
	streamFilter.Options.FilterOption = &streams.ReadReq_Options_Filter{Filter: rdTypeRegex("x")}
	noFilterCase := rdAllReq(1, nil)
	noFilterCase.Options.FilterOption = nil
	zeroMultiplier := rdAllReq(0, rdTypeRegex("x"))
	zeroMultiplier.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	zeroMultiplier.Options.GetFilter().CheckpointIntervalMultiplier = 0
	cases := []struct {
		name string
		req  *streams.ReadReq
		code codes.Code
		msg  string
	}{
		{"missing uuid option", noUUID, codes.InvalidArgument, "'uuidOption' is a required argument"},
		{"backwards subscription", backSub, codes.InvalidArgument, "The combination of (All, Subscription, Backwards, NoFilter) is invalid."},
		{"filtered stream read", streamFilter, codes.InvalidArgument, "The combination of (Stream, Count, Forwards, Filter) is invalid."},
		{"no filter option", noFilterCase, codes.InvalidArgument, "The combination of (All, Count, Forwards, None) is invalid."},
		{"invalid regex", rdAllReq(1, rdTypeRegex(`(unclosed`)), codes.InvalidArgument, "invalid filter regex"},
		{"zero checkpoint multiplier", zeroMultiplier, codes.Unknown, "checkpointIntervalMultiplier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := f.raw.Read(rdCtx(t), tc.req)
			if err == nil {
				_, err = rdRecvAll(t, rc)
			}
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestReadStringUUIDsAndLinks(t *testing.T) {
	f := newReadFixture(t, Options{})
	target := stAppend(t, f.store, "target", expNoStream, stEvents(3, "E")...)
	_ = target
	stAppend(t, f.store, "links", expNoStream,
		ProposedEvent{ID: uuid.New(), Type: "$>", Data: []byte("1@target")},
		ProposedEvent{ID: uuid.New(), Type: "$>", Data: []byte("7@target")})
	tgt := f.store.streams["target"].events[1]
	links := f.store.streams["links"].events

	got, err := f.readStream(t, "links", kurrentdb.ReadStreamOptions{ResolveLinkTos: true}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Event == nil || got[0].Event.EventID != tgt.id || got[0].Link == nil || got[0].Link.EventID != links[0].id ||
		*got[0].Commit != links[0].pos {
		t.Fatalf("resolved link = %+v", got[0])
	}
	if got[1].Event != nil || got[1].Link == nil || got[1].Link.EventID != links[1].id {
		t.Fatalf("link to a missing event = %+v, want a link without event", got[1])
	}
	got, _ = f.readStream(t, "links", kurrentdb.ReadStreamOptions{}, 10)
	if got[0].Link != nil || got[0].Event.EventType != "$>" || string(got[0].Event.Data) != "1@target" {
		t.Fatalf("unresolved link = %+v", got[0])
	}

	req := rdStreamReq("target", false, 1)
	req.Options.UuidOption.Content = &streams.ReadReq_Options_UUIDOption_String_{}
	rc, err := f.raw.Read(rdCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := rdRecvAll(t, rc)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("string-id read: %d messages, %v", len(msgs), err)
	}
	want := f.store.streams["target"].events[0].id.String()
	if id := msgs[0].GetEvent().GetEvent().GetId().GetString_(); id != want {
		t.Fatalf("string id = %q, want %q", id, want)
	}
}

// rdSubscribe opens a raw subscription and checks the confirmation.
func rdSubscribe(t *testing.T, ctx context.Context, f *readFixture, req *streams.ReadReq) streams.Streams_ReadClient {
	t.Helper()
	rc, err := f.raw.Read(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rc.Recv()
	if err != nil || m.GetConfirmation() == nil || m.GetConfirmation().SubscriptionId == "" {
		t.Fatalf("first message %v, %v; want a confirmation", m, err)
	}
	return rc
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
