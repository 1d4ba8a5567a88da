package emulator

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	v2errors "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/errors"
	v2streams "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
)

func TestMultiStreamAppend(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	s1, s2 := "ms-a-"+uuid.NewString(), "ms-b-"+uuid.NewString()
	meta, _ := json.Marshal(map[string]string{"tenant": "t1"})
	ev1 := kurrentdb.EventData{EventID: uuid.New(), EventType: "OrderCreated", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{"n":1}`), Metadata: meta}
	ev2 := kurrentdb.EventData{EventID: uuid.New(), EventType: "OrderShipped", ContentType: kurrentdb.ContentTypeBinary, Data: []byte{1}, Metadata: meta}
	res, err := c.MultiStreamAppend(ctx, slices.Values([]kurrentdb.AppendStreamRequest{
		{StreamName: s1, Events: slices.Values([]kurrentdb.EventData{ev1}), ExpectedStreamState: kurrentdb.NoStream{}},
		{StreamName: s2, Events: slices.Values([]kurrentdb.EventData{ev2, ev2}), ExpectedStreamState: kurrentdb.Any{}},
	}))
	if err != nil {
		t.Fatalf("MultiStreamAppend: %v", err)
	}
	if res.Position <= 0 || len(res.Responses) != 2 || res.Responses[0].StreamRevision != 0 || res.Responses[1].StreamRevision != 1 {
		t.Fatalf("result = %+v, want a position and revisions 0 and 1", res)
	}

	for _, tc := range []struct {
		stream string
		format string
	}{{s1, "Json"}, {s2, "Bytes"}} {
		events, err := readAllOf(t, c, tc.stream)
		if err != nil || len(events) == 0 {
			t.Fatalf("read %s: %d events, %v", tc.stream, len(events), err)
		}
		var got map[string]string
		if err := json.Unmarshal(events[0].Event.UserMetadata, &got); err != nil {
			t.Fatalf("metadata %q: %v", events[0].Event.UserMetadata, err)
		}
		if got["tenant"] != "t1" || got["$schema.format"] != tc.format || got["$schema.name"] != events[0].Event.EventType {
			t.Errorf("%s metadata = %v, want tenant, $schema.format=%s and $schema.name", tc.stream, got, tc.format)
		}
	}
	if uint64(res.Position) != lastPosition(t, c, s2) {
		t.Errorf("session position %d is not the last written record's position %d", res.Position, lastPosition(t, c, s2))
	}

	// Revision conflict and tombstone, as rich errors.
	_, err = c.MultiStreamAppend(ctx, slices.Values([]kurrentdb.AppendStreamRequest{
		{StreamName: s2, Events: slices.Values(testEvents(1, "X")), ExpectedStreamState: kurrentdb.NoStream{}},
	}))
	var conflict *kurrentdb.StreamRevisionConflictError
	if !errors.As(err, &conflict) || conflict.Stream != s2 || conflict.ExpectedRevision != (kurrentdb.NoStream{}) ||
		conflict.ActualRevision != (kurrentdb.StreamRevision{Value: 1}) {
		t.Fatalf("conflict: err = %v (%+v), want a revision conflict expecting NoStream, actual 1", err, conflict)
	}
	if _, err := c.TombstoneStream(ctx, s1, kurrentdb.TombstoneStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.MultiStreamAppend(ctx, slices.Values([]kurrentdb.AppendStreamRequest{
		{StreamName: s1, Events: slices.Values(testEvents(1, "X")), ExpectedStreamState: kurrentdb.Any{}},
	}))
	if got := errorCode(err); got != kurrentdb.ErrorCodeStreamTombstoned {
		t.Fatalf("append to tombstoned: err = %v, want ErrorCodeStreamTombstoned", err)
	}
}

// lastPosition is the commit position of a stream's last event.
func lastPosition(t *testing.T, c *kurrentdb.Client, stream string) uint64 {
	t.Helper()
	events, err := readAllOf(t, c, stream)
	if err != nil || len(events) == 0 {
		t.Fatalf("read %s: %d events, %v", stream, len(events), err)
	}
	return events[len(events)-1].Event.Position.Commit
}

func TestAppendSessionErrors(t *testing.T) {
	srv := startTest(t, Options{MaxAppendEventSize: 200, MaxAppendSize: 300})
	client := v2streams.NewStreamsServiceClient(rawConn(t, srv))
	rec := func(size int) *v2streams.AppendRecord {
		return &v2streams.AppendRecord{
			Schema:     &v2streams.SchemaInfo{Name: "E", Format: v2streams.SchemaFormat_SCHEMA_FORMAT_JSON},
			Data:       make([]byte, size),
			Properties: map[string]*structpb.Value{"k": structpb.NewStringValue("v")},
		}
	}
	rev := func(n int64) *int64 { return &n }
	stream := "sess-" + uuid.NewString()
	cases := []struct {
		name   string
		reqs   []*v2streams.AppendRequest
		code   codes.Code
		detail func(any) bool
	}{
		{"empty session", nil, codes.FailedPrecondition, nil},
		{"same stream twice", []*v2streams.AppendRequest{
			{Stream: stream, Records: []*v2streams.AppendRecord{rec(1)}},
			{Stream: "SESS-" + stream[5:], Records: []*v2streams.AppendRecord{rec(1)}},
		}, codes.Aborted, func(d any) bool { _, ok := d.(*v2errors.StreamAlreadyInAppendSessionErrorDetails); return ok }},
		{"record too large", []*v2streams.AppendRequest{{Stream: stream, Records: []*v2streams.AppendRecord{rec(250)}}},
			codes.InvalidArgument, func(d any) bool {
				x, ok := d.(*v2errors.AppendRecordSizeExceededErrorDetails)
				return ok && x.Stream == stream && x.MaxSize == 200
			}},
		{"transaction too large", []*v2streams.AppendRequest{{Stream: stream, Records: []*v2streams.AppendRecord{rec(150), rec(150)}}},
			codes.Aborted, func(d any) bool {
				x, ok := d.(*v2errors.AppendTransactionSizeExceededErrorDetails)
				return ok && x.MaxSize == 300
			}},
		{"bad expected revision", []*v2streams.AppendRequest{{Stream: stream, ExpectedRevision: rev(-3), Records: []*v2streams.AppendRecord{rec(1)}}},
			codes.InvalidArgument, nil},
		{"no event type", []*v2streams.AppendRequest{{Stream: stream, Records: []*v2streams.AppendRecord{{Data: []byte("x")}}}},
			codes.InvalidArgument, nil},
		{"bad record id", []*v2streams.AppendRequest{{Stream: stream, Records: []*v2streams.AppendRecord{{RecordId: new(string), Schema: &v2streams.SchemaInfo{Name: "E"}}}}},
			codes.InvalidArgument, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call, err := client.AppendSession(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.reqs {
				if err := call.Send(r); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			_, err = call.CloseAndRecv()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			if tc.detail == nil {
				return
			}
			for _, d := range st.Details() {
				if tc.detail(d) {
					return
				}
			}
			t.Fatalf("details %v lack the expected one", st.Details())
		})
	}
	// None of the failed sessions wrote anything.
	if _, err := readAllOf(t, newTestClient(t, srv.URI()), stream); errorCode(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("read after failed sessions: err = %v, want not found", err)
	}
}
