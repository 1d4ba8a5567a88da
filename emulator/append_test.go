package emulator

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

func TestAppendWithOfficialClient(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	stream := "order-" + uuid.NewString()

	res, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, testEvents(3, "Created")...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if res.NextExpectedVersion != 2 || res.CommitPosition == 0 || res.CommitPosition != res.PreparePosition {
		t.Fatalf("append result = %+v, want revision 2 and equal non-zero positions", res)
	}

	// The same stream again with NoStream: an OK response carrying
	// wrong_expected_version, which the client maps to its error code.
	_, err = c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, testEvents(1, "Created")...)
	if got := errorCode(err); got != kurrentdb.ErrorCodeWrongExpectedVersion {
		t.Fatalf("second NoStream append: err = %v (code %d), want ErrorCodeWrongExpectedVersion", err, got)
	}
	_, err = c.AppendToStream(ctx, "missing-"+uuid.NewString(), kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.StreamExists{}}, testEvents(1, "X")...)
	if got := errorCode(err); got != kurrentdb.ErrorCodeWrongExpectedVersion {
		t.Fatalf("StreamExists on a missing stream: err = %v, want ErrorCodeWrongExpectedVersion", err)
	}

	res2, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.Revision(2)}, testEvents(1, "Shipped")...)
	if err != nil {
		t.Fatalf("append at revision 2: %v", err)
	}
	if res2.NextExpectedVersion != 3 || res2.CommitPosition <= res.CommitPosition {
		t.Fatalf("second result = %+v after %+v, want revision 3 at a later position", res2, res)
	}
	events, err := readAllOf(t, c, stream)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if len(events) != 4 || events[3].Event.EventType != "Shipped" || events[3].Event.Position.Commit != res2.CommitPosition {
		t.Fatalf("read back %d events, last %+v; want 4 ending with Shipped at %d", len(events), events[len(events)-1].Event, res2.CommitPosition)
	}
}

func TestAppendWrongExpectedVersionFillsBothOneofs(t *testing.T) {
	srv := startTest(t, Options{})
	client := streams.NewStreamsClient(rawConn(t, srv))
	stream := "wev-" + uuid.NewString()
	ok := rawAppend(t, client, stream, &streams.AppendReq_Options_NoStream{NoStream: &shared.Empty{}}, proposed("A", "application/json"))
	if ok.GetSuccess().GetCurrentRevision() != 0 || ok.GetSuccess().GetPosition().GetCommitPosition() == 0 {
		t.Fatalf("first append = %v, want revision 0 with a position", ok)
	}
	resp := rawAppend(t, client, stream, &streams.AppendReq_Options_Revision{Revision: 5}, proposed("A", "application/json"))
	w := resp.GetWrongExpectedVersion()
	if w == nil {
		t.Fatalf("response = %v, want wrong_expected_version", resp)
	}
	if w.GetCurrentRevision() != 0 || w.GetCurrentRevision_20_6_0() != 0 || w.GetCurrentNoStream() != nil {
		t.Errorf("current revision fields = %v, want 0 in both oneofs", w)
	}
	if w.GetExpectedRevision() != 5 || w.GetExpectedRevision_20_6_0() != 5 {
		t.Errorf("expected revision fields = %v, want 5 in both oneofs", w)
	}
	resp = rawAppend(t, client, "none-"+uuid.NewString(), &streams.AppendReq_Options_StreamExists{StreamExists: &shared.Empty{}}, proposed("A", "application/json"))
	w = resp.GetWrongExpectedVersion()
	if w.GetCurrentNoStream() == nil || w.GetNoStream_20_6_0() == nil || w.GetExpectedStreamExists() == nil || w.GetStreamExists_20_6_0() == nil {
		t.Errorf("StreamExists on a missing stream = %v, want no-stream current and stream-exists expected in both oneofs", w)
	}
}

func TestAppendEmptyToMissingStreamAnswersNoStream(t *testing.T) {
	srv := startTest(t, Options{})
	client := streams.NewStreamsClient(rawConn(t, srv))
	resp := rawAppend(t, client, "empty-"+uuid.NewString(), &streams.AppendReq_Options_Any{Any: &shared.Empty{}})
	if resp.GetSuccess().GetNoStream() == nil || resp.GetSuccess().GetNoPosition() == nil {
		t.Fatalf("empty append = %v, want success with no_stream and no_position", resp)
	}
}

func TestAppendRejectsBadRequests(t *testing.T) {
	srv := startTest(t, Options{MaxAppendEventSize: 100, MaxAppendSize: 250})
	client := streams.NewStreamsClient(rawConn(t, srv))
	anyRev := &streams.AppendReq_Options_Any{Any: &shared.Empty{}}
	big := proposed("Big", "application/octet-stream")
	big.Data = make([]byte, 120)
	mid := proposed("Mid", "application/octet-stream")
	mid.Data = make([]byte, 90)
	noType := proposed("", "application/json")
	delete(noType.Metadata, "type")
	noContentType := proposed("T", "")
	delete(noContentType.Metadata, "content-type")

	cases := []struct {
		name      string
		msgs      []*streams.AppendReq
		code      codes.Code
		exception string
		trailers  map[string]string
	}{
		{
			name: "missing type",
			msgs: []*streams.AppendReq{appendOptions("s-"+uuid.NewString(), anyRev), appendEvent(noType)},
			code: codes.InvalidArgument, exception: "missing-required-metadata-property",
			trailers: map[string]string{"required-metadata-properties": "type,content-type"},
		},
		{
			name: "missing content-type",
			msgs: []*streams.AppendReq{appendOptions("s-"+uuid.NewString(), anyRev), appendEvent(noContentType)},
			code: codes.InvalidArgument, exception: "missing-required-metadata-property",
		},
		{
			name: "event too large",
			msgs: []*streams.AppendReq{appendOptions("s-"+uuid.NewString(), anyRev), appendEvent(big)},
			code: codes.InvalidArgument, exception: "maximum-append-event-size-exceeded",
			trailers: map[string]string{"maximum-append-event-size": "100", "proposed-append-event-size": "126"},
		},
		{
			name: "append too large",
			msgs: []*streams.AppendReq{appendOptions("s-"+uuid.NewString(), anyRev), appendEvent(mid), appendEvent(mid), appendEvent(mid)},
			code: codes.InvalidArgument, exception: "maximum-append-size-exceeded",
			trailers: map[string]string{"maximum-append-size": "250"},
		},
		{
			name: "events before options",
			msgs: []*streams.AppendReq{appendEvent(mid)},
			code: codes.InvalidArgument,
		},
		{
			name: "no expected revision",
			msgs: []*streams.AppendReq{{Content: &streams.AppendReq_Options_{Options: &streams.AppendReq_Options{
				StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("s")}}}}},
			code: codes.InvalidArgument,
		},
		{
			name: "empty stream name",
			msgs: []*streams.AppendReq{appendOptions("", anyRev)},
			code: codes.InvalidArgument,
		},
		{
			name: "options twice",
			msgs: []*streams.AppendReq{appendOptions("s-"+uuid.NewString(), anyRev), appendOptions("s", anyRev)},
			code: codes.InvalidArgument,
		},
		{
			name: "bad event id",
			msgs: []*streams.AppendReq{appendOptions("s-"+uuid.NewString(), anyRev), appendEvent(&streams.AppendReq_ProposedMessage{
				Id: &shared.UUID{Value: &shared.UUID_String_{String_: "nope"}}, Metadata: map[string]string{"type": "T", "content-type": "x"}})},
			code: codes.InvalidArgument,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var trailer metadata.MD
			call, err := client.Append(testCtx(t), grpc.Trailer(&trailer))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				if err := call.Send(m); err != nil {
					t.Fatalf("send: %v (the server must read the whole request before failing)", err)
				}
			}
			_, err = call.CloseAndRecv()
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want code %v", err, tc.code)
			}
			if got := first(trailer, "exception"); got != tc.exception {
				t.Errorf("exception trailer = %q, want %q (trailers %v)", got, tc.exception, trailer)
			}
			for k, v := range tc.trailers {
				if got := first(trailer, k); got != v {
					t.Errorf("trailer %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestAppendToTombstonedStream(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	stream := "gone-" + uuid.NewString()
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TombstoneStream(ctx, stream, kurrentdb.TombstoneStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...)
	if got := errorCode(err); got != kurrentdb.ErrorCodeStreamDeleted {
		t.Fatalf("append after tombstone: err = %v, want ErrorCodeStreamDeleted", err)
	}
	if !strings.Contains(err.Error(), stream) {
		t.Errorf("error %q does not name the stream", err)
	}
}

// rawAppend sends one Append call and returns its response.
func rawAppend(t *testing.T, client streams.StreamsClient, stream string, exp any, events ...*streams.AppendReq_ProposedMessage) *streams.AppendResp {
	t.Helper()
	call, err := client.Append(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*streams.AppendReq{appendOptions(stream, exp)}
	for _, e := range events {
		msgs = append(msgs, appendEvent(e))
	}
	for _, m := range msgs {
		if err := call.Send(m); err != nil && err != io.EOF {
			t.Fatalf("send: %v", err)
		}
	}
	resp, err := call.CloseAndRecv()
	if err != nil {
		t.Fatalf("append to %q: %v", stream, err)
	}
	return resp
}

func appendOptions(stream string, exp any) *streams.AppendReq {
	o := &streams.AppendReq_Options{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)}}
	switch e := exp.(type) {
	case *streams.AppendReq_Options_Any:
		o.ExpectedStreamRevision = e
	case *streams.AppendReq_Options_NoStream:
		o.ExpectedStreamRevision = e
	case *streams.AppendReq_Options_StreamExists:
		o.ExpectedStreamRevision = e
	case *streams.AppendReq_Options_Revision:
		o.ExpectedStreamRevision = e
	}
	return &streams.AppendReq{Content: &streams.AppendReq_Options_{Options: o}}
}

func appendEvent(pm *streams.AppendReq_ProposedMessage) *streams.AppendReq {
	return &streams.AppendReq{Content: &streams.AppendReq_ProposedMessage_{ProposedMessage: pm}}
}

func proposed(typ, contentType string) *streams.AppendReq_ProposedMessage {
	return &streams.AppendReq_ProposedMessage{
		Id:             protoUUID(uuid.New()),
		Metadata:       map[string]string{"type": typ, "content-type": contentType},
		Data:           []byte(`{"a":1}`),
		CustomMetadata: []byte{},
	}
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// TestAppendLargestEvent appends an event just under KurrentDB's 16 MiB
// limit, which needs a receive limit far above gRPC's 4 MiB default, and
// reads it back.
func TestAppendLargestEvent(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	stream := "big-" + uuid.NewString()
	data := make([]byte, DefaultMaxAppendEventSize-2*len("Big"))
	for i := range data {
		data[i] = byte(i)
	}
	ev := kurrentdb.EventData{EventID: uuid.New(), EventType: "Big", ContentType: kurrentdb.ContentTypeBinary, Data: data}
	if _, err := c.AppendToStream(testCtx(t), stream, kurrentdb.AppendToStreamOptions{}, ev); err != nil {
		t.Fatalf("append of a %d-byte event: %v", len(data), err)
	}
	events, err := readAllOf(t, c, stream)
	if err != nil || len(events) != 1 || !bytes.Equal(events[0].Event.Data, data) {
		t.Fatalf("read back %d events, %v", len(events), err)
	}
	ev.EventID, ev.Data = uuid.New(), append(data, 0)
	_, err = c.AppendToStream(testCtx(t), stream, kurrentdb.AppendToStreamOptions{}, ev)
	if err == nil || !strings.Contains(err.Error(), "Maximum Append Event Size") {
		t.Fatalf("append of a byte more: err = %v, want the event size limit", err)
	}
}
