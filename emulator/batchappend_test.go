package emulator

import (
	"testing"
	"time"

	"github.com/google/uuid"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

func batchOptions(stream string, exp any) *streams.BatchAppendReq_Options {
	o := &streams.BatchAppendReq_Options{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)}}
	switch e := exp.(type) {
	case *streams.BatchAppendReq_Options_Any:
		o.ExpectedStreamPosition = e
	case *streams.BatchAppendReq_Options_NoStream:
		o.ExpectedStreamPosition = e
	case *streams.BatchAppendReq_Options_StreamExists:
		o.ExpectedStreamPosition = e
	case *streams.BatchAppendReq_Options_StreamPosition:
		o.ExpectedStreamPosition = e
	}
	return o
}

func batchEvents(n int, typ string) []*streams.BatchAppendReq_ProposedMessage {
	out := make([]*streams.BatchAppendReq_ProposedMessage, n)
	for i := range out {
		out[i] = &streams.BatchAppendReq_ProposedMessage{
			Id:       protoUUID(uuid.New()),
			Metadata: map[string]string{"type": typ, "content-type": "application/octet-stream"},
			Data:     []byte("x"),
		}
	}
	return out
}

// detailOf unpacks the single detail of a BatchAppend error status.
func detailOf(t *testing.T, st *rpcstatus.Status) any {
	t.Helper()
	if len(st.GetDetails()) != 1 {
		t.Fatalf("status %v has %d details, want 1", st, len(st.GetDetails()))
	}
	m, err := st.GetDetails()[0].UnmarshalNew()
	if err != nil {
		t.Fatalf("unpack detail of %v: %v", st, err)
	}
	return m
}

func TestBatchAppend(t *testing.T) {
	srv := startTest(t, Options{})
	call, err := streams.NewStreamsClient(rawConn(t, srv)).BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	stream := "batch-" + uuid.NewString()
	corr1, corr2, corr3 := uuid.New(), uuid.New(), uuid.New()
	noStream := &streams.BatchAppendReq_Options_NoStream{NoStream: &emptypb.Empty{}}

	// One write in two requests (options first, is_final last), with a second
	// write interleaved on another correlation id that fails its check.
	send := func(r *streams.BatchAppendReq) {
		t.Helper()
		if err := call.Send(r); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	send(&streams.BatchAppendReq{CorrelationId: protoUUID(corr1), Options: batchOptions(stream, noStream), ProposedMessages: batchEvents(2, "A")})
	send(&streams.BatchAppendReq{CorrelationId: protoUUID(corr2), Options: batchOptions(stream, &streams.BatchAppendReq_Options_StreamPosition{StreamPosition: 7}),
		ProposedMessages: batchEvents(1, "B"), IsFinal: true})
	send(&streams.BatchAppendReq{CorrelationId: protoUUID(corr1), ProposedMessages: batchEvents(1, "A"), IsFinal: true})

	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetCorrelationId(); got.GetStructured().GetMostSignificantBits() != protoUUID(corr2).GetStructured().GetMostSignificantBits() {
		t.Fatalf("first response correlation = %v, want the failing write's", got)
	}
	st := resp.GetError()
	if st == nil || codes.Code(st.GetCode()) != codes.AlreadyExists || st.GetMessage() != "WrongExpectedVersion" {
		t.Fatalf("response = %v, want a WrongExpectedVersion error", resp)
	}
	wev, ok := detailOf(t, st).(*shared.WrongExpectedVersion)
	if !ok || wev.GetCurrentNoStream() == nil || wev.GetExpectedStreamPosition() != 7 {
		t.Fatalf("detail = %v, want WrongExpectedVersion{current no stream, expected 7}", detailOf(t, st))
	}
	if string(resp.GetStreamIdentifier().GetStreamName()) != stream {
		t.Errorf("stream identifier = %q, want %q", resp.GetStreamIdentifier().GetStreamName(), stream)
	}

	resp, err = call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ok1 := resp.GetSuccess()
	if ok1 == nil || ok1.GetCurrentRevision() != 2 || ok1.GetPosition().GetCommitPosition() == 0 {
		t.Fatalf("response = %v, want success at revision 2 with a position", resp)
	}

	// Deleted stream and a deadline already past.
	c := newTestClient(t, srv.URI())
	if _, err := c.TombstoneStream(testCtx(t), stream, kurrentdb.TombstoneStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	send(&streams.BatchAppendReq{CorrelationId: protoUUID(corr3), Options: batchOptions(stream, &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}),
		ProposedMessages: batchEvents(1, "C"), IsFinal: true})
	resp, err = call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := detailOf(t, resp.GetError()).(*shared.StreamDeleted); !ok || codes.Code(resp.GetError().GetCode()) != codes.NotFound {
		t.Fatalf("append to a tombstoned stream = %v, want a StreamDeleted error", resp)
	}
	expired := batchOptions("other", &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}})
	expired.DeadlineOption = &streams.BatchAppendReq_Options_Deadline{Deadline: durationpb.New(0)}
	send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: expired, IsFinal: true})
	resp, err = call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := detailOf(t, resp.GetError()).(*shared.Timeout); !ok {
		t.Fatalf("expired deadline = %v, want a Timeout error", resp)
	}
	if err := call.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := call.Recv(); err == nil {
		t.Fatal("Recv after CloseSend returned a message, want the end of the call")
	}

}

func TestBatchAppendBadRequests(t *testing.T) {
	srv := startTest(t, Options{MaxAppendEventSize: 50, MaxAppendSize: 60})
	call, err := streams.NewStreamsClient(rawConn(t, srv)).BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	anyRev := &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}
	noType := batchEvents(1, "T")
	delete(noType[0].Metadata, "type")
	big := batchEvents(1, "T")
	big[0].Data = make([]byte, 60)
	mid := batchEvents(2, "T")
	mid[0].Data, mid[1].Data = make([]byte, 40), make([]byte, 40)

	cases := []struct {
		name string
		req  *streams.BatchAppendReq
		want func(any) bool
	}{
		{"no stream", &streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("", anyRev), IsFinal: true},
			func(d any) bool { _, ok := d.(*shared.BadRequest); return ok }},
		{"no expected position", &streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", nil), IsFinal: true},
			func(d any) bool { _, ok := d.(*shared.BadRequest); return ok }},
		{"no correlation id", &streams.BatchAppendReq{Options: batchOptions("s", anyRev), IsFinal: true},
			func(d any) bool { _, ok := d.(*shared.BadRequest); return ok }},
		{"missing type", &streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", anyRev), ProposedMessages: noType, IsFinal: true},
			func(d any) bool { b, ok := d.(*shared.BadRequest); return ok && b.GetMessage() != "" }},
		{"event too large", &streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", anyRev), ProposedMessages: big, IsFinal: true},
			func(d any) bool { return d == nil }},
		{"append too large", &streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", anyRev), ProposedMessages: mid, IsFinal: true},
			func(d any) bool {
				m, ok := d.(*shared.MaximumAppendSizeExceeded)
				return ok && m.GetMaxAppendSize() == 60
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := call.Send(tc.req); err != nil {
				t.Fatal(err)
			}
			resp, err := call.Recv()
			if err != nil {
				t.Fatal(err)
			}
			st := resp.GetError()
			if st == nil || codes.Code(st.GetCode()) != codes.InvalidArgument {
				t.Fatalf("response = %v, want an InvalidArgument error", resp)
			}
			var d any
			if a := st.GetDetails(); len(a) == 1 {
				if m, err := a[0].UnmarshalNew(); err == nil {
					d = m
				} else if a[0].GetTypeUrl() != "type.googleapis.com/event_store.client.MaximumAppendEventSizeExceeded" {
					t.Fatalf("detail %v: %v", a[0], err)
				}
			}
			if !tc.want(d) {
				t.Fatalf("detail = %v (status %v), not the expected one", d, st)
			}
		})
	}
}

func TestBatchAppendAuthorizesEachWrite(t *testing.T) {
	srv := startTest(t, Options{})
	// Anonymous on the TLS listener: the call works, each write is refused.
	call, err := streams.NewStreamsClient(rawTLSConn(t, srv)).BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()),
		Options:          batchOptions("s", &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}),
		ProposedMessages: batchEvents(1, "A"), IsFinal: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := detailOf(t, resp.GetError()).(*shared.AccessDenied); !ok || codes.Code(resp.GetError().GetCode()) != codes.PermissionDenied {
		t.Fatalf("anonymous batch append = %v, want AccessDenied", resp)
	}

	// The ops user may write user streams but not system streams.
	call, err = streams.NewStreamsClient(rawTLSConn(t, srv)).BatchAppend(withBasicAuth(testCtx(t), "ops", "changeit"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stream string
		denied bool
	}{{"user-" + uuid.NewString(), false}, {"$system-" + uuid.NewString(), true}} {
		if err := call.Send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()),
			Options:          batchOptions(tc.stream, &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}),
			ProposedMessages: batchEvents(1, "A"), IsFinal: true}); err != nil {
			t.Fatal(err)
		}
		resp, err := call.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if denied := resp.GetError() != nil; denied != tc.denied {
			t.Errorf("ops writing %q: response %v, want denied=%v", tc.stream, resp, tc.denied)
		}
	}
}

func TestBatchAppendBoundsPendingWrites(t *testing.T) {
	// Room for two of the 42-byte events below (each counts its record
	// overhead too), not three.
	srv := startTest(t, Options{MaxAppendSize: 2*appendCost(42) + 50})
	call, err := streams.NewStreamsClient(rawConn(t, srv)).BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	anyRev := &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}
	ev := func() []*streams.BatchAppendReq_ProposedMessage {
		e := batchEvents(1, "T")
		e[0].Data = make([]byte, 40)
		return e
	}
	// Two unfinished writes of 42 bytes fit; the third goes over the limit
	// for the call as a whole and is refused.
	for i := 0; i < 2; i++ {
		if err := call.Send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", anyRev), ProposedMessages: ev()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := call.Send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", anyRev), ProposedMessages: ev()}); err != nil {
		t.Fatal(err)
	}
	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := detailOf(t, resp.GetError()).(*shared.MaximumAppendSizeExceeded); !ok {
		t.Fatalf("third pending write = %v, want MaximumAppendSizeExceeded", resp)
	}

	// The number of unfinished writes is bounded too.
	for i := 0; i < maxPendingBatches; i++ {
		if err := call.Send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), Options: batchOptions("s", anyRev)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err = call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := detailOf(t, resp.GetError()).(*shared.BadRequest); !ok || b.GetMessage() == "" {
		t.Fatalf("write beyond the pending limit = %v, want BadRequest", resp)
	}
}

// TestBatchAppendStringIDs covers the shapes other clients send: string
// UUIDs for the correlation and event ids, and an absolute deadline.
func TestBatchAppendStringIDs(t *testing.T) {
	srv := startTest(t, Options{})
	call, err := streams.NewStreamsClient(rawConn(t, srv)).BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	corr := uuid.NewString()
	eventID := uuid.New()
	opts := batchOptions("py-"+uuid.NewString(), &streams.BatchAppendReq_Options_NoStream{NoStream: &emptypb.Empty{}})
	opts.DeadlineOption = &streams.BatchAppendReq_Options_Deadline_21_10_0{Deadline_21_10_0: timestamppb.New(time.Now().Add(time.Minute))}
	if err := call.Send(&streams.BatchAppendReq{
		CorrelationId: &shared.UUID{Value: &shared.UUID_String_{String_: corr}},
		Options:       opts,
		ProposedMessages: []*streams.BatchAppendReq_ProposedMessage{{
			Id:       &shared.UUID{Value: &shared.UUID_String_{String_: eventID.String()}},
			Metadata: map[string]string{"type": "mod:Dog.Registered", "content-type": "application/octet-stream"},
			Data:     []byte(`{"name":"Fido"}`),
		}},
		IsFinal: true,
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCorrelationId().GetString_() != corr || resp.GetSuccess().GetCurrentRevision() != 0 {
		t.Fatalf("response = %v, want success echoing correlation id %s", resp, corr)
	}
	events, err := readAllOf(t, newTestClient(t, srv.URI()), string(opts.GetStreamIdentifier().GetStreamName()))
	if err != nil || len(events) != 1 || events[0].Event.EventID != eventID || events[0].Event.ContentType != "application/octet-stream" {
		t.Fatalf("read back %v, %v; want the event with id %s", events, err, eventID)
	}
}
