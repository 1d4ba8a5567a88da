package emulator

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	v2streams "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
)

// emptyEvent is an Append event with an empty type, data and metadata.
func emptyEvent() *streams.AppendReq {
	return appendEvent(&streams.AppendReq_ProposedMessage{Id: protoUUID(uuid.New()),
		Metadata: map[string]string{"type": "", "content-type": "application/octet-stream"}, Data: []byte{}, CustomMetadata: []byte{}})
}

// appendRaw sends an Append of n events made by ev and returns the trailers
// and the error it ends with.
func appendRaw(t *testing.T, client streams.StreamsClient, stream string, n int, ev func() *streams.AppendReq) (metadata.MD, error) {
	t.Helper()
	var trailer metadata.MD
	call, err := client.Append(testCtx(t), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Send(appendOptions(stream, &streams.AppendReq_Options_Any{Any: &shared.Empty{}})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := call.Send(ev()); err != nil && err != io.EOF {
			t.Fatalf("send event %d: %v", i, err)
		}
	}
	_, err = call.CloseAndRecv()
	return trailer, err
}

func TestAppendSizeCountsEmptyEvents(t *testing.T) {
	const limit = 1000
	srv := startTest(t, Options{MaxAppendSize: limit})
	client := streams.NewStreamsClient(rawConn(t, srv))
	fit := limit / appendEventOverhead // empty events that fit
	if _, err := appendRaw(t, client, "empty-"+uuid.NewString(), fit, emptyEvent); err != nil {
		t.Fatalf("%d empty events (%d bytes counted) under a %d-byte limit: %v", fit, fit*appendEventOverhead, limit, err)
	}
	// The reported bypass: 20,000 empty events under a 1,000-byte limit.
	trailer, err := appendRaw(t, client, "empty-"+uuid.NewString(), 20_000, emptyEvent)
	if status.Code(err) != codes.InvalidArgument || first(trailer, "exception") != "maximum-append-size-exceeded" ||
		first(trailer, "maximum-append-size") != strconv.Itoa(limit) {
		t.Fatalf("20,000 empty events: %v with trailers %v, want maximum-append-size-exceeded", err, trailer)
	}
	if _, err := appendRaw(t, client, "empty-"+uuid.NewString(), fit+1, emptyEvent); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("%d empty events: %v, want InvalidArgument", fit+1, err)
	}

	// BatchAppend and AppendSession count the same overhead.
	call, err := streams.NewStreamsClient(rawConn(t, srv)).BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	evs := batchEvents(fit+1, "")
	for _, e := range evs {
		e.Data = nil
	}
	if err := call.Send(&streams.BatchAppendReq{CorrelationId: protoUUID(uuid.New()), IsFinal: true,
		Options: batchOptions("empty-"+uuid.NewString(), &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}}), ProposedMessages: evs}); err != nil {
		t.Fatal(err)
	}
	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := detailOf(t, resp.GetError()).(*shared.MaximumAppendSizeExceeded); !ok {
		t.Fatalf("BatchAppend of %d empty events = %v, want MaximumAppendSizeExceeded", fit+1, resp)
	}
	_ = call.CloseSend()

	recs := make([]*v2streams.AppendRecord, fit+1)
	for i := range recs {
		recs[i] = &v2streams.AppendRecord{Schema: &v2streams.SchemaInfo{Name: "E", Format: v2streams.SchemaFormat_SCHEMA_FORMAT_BYTES}}
	}
	err = appendSession(t, srv, &v2streams.AppendRequest{Stream: "empty-" + uuid.NewString(), Records: recs})
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "exceeds the maximum of 1000") {
		t.Fatalf("AppendSession of %d empty records = %v, want Aborted (transaction size exceeded)", fit+1, err)
	}
}

// appendSession sends one AppendSession of the given requests and returns
// its error.
func appendSession(t *testing.T, srv *Server, reqs ...*v2streams.AppendRequest) error {
	t.Helper()
	call, err := v2streams.NewStreamsServiceClient(rawConn(t, srv)).AppendSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := call.Send(r); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	_, err = call.CloseAndRecv()
	return err
}

func TestAppendEventCap(t *testing.T) {
	const maxEvents = 5
	srv := startTest(t, Options{MaxAppendEvents: maxEvents})
	client := streams.NewStreamsClient(rawConn(t, srv))
	small := func() *streams.AppendReq { return appendEvent(proposed("E", "application/json")) }
	if _, err := appendRaw(t, client, "cap-"+uuid.NewString(), maxEvents, small); err != nil {
		t.Fatalf("Append of %d events under a cap of %d: %v", maxEvents, maxEvents, err)
	}
	stream := "cap-" + uuid.NewString()
	trailer, err := appendRaw(t, client, stream, maxEvents+1, small)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "more than 5 events") ||
		!strings.Contains(err.Error(), stream) || first(trailer, "exception") != "maximum-append-size-exceeded" ||
		first(trailer, "maximum-append-events") != "5" {
		t.Fatalf("Append of %d events = %v with trailers %v, want InvalidArgument naming the cap and the stream", maxEvents+1, err, trailer)
	}
	if _, err := readAllOf(t, newTestClient(t, srv.URI()), stream); err == nil {
		t.Fatalf("the refused append wrote to %q", stream)
	}

	// BatchAppend: the cap holds across the requests of one write.
	call, err := client.BatchAppend(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	corr := protoUUID(uuid.New())
	opts := batchOptions("cap-"+uuid.NewString(), &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}})
	if err := call.Send(&streams.BatchAppendReq{CorrelationId: corr, Options: opts, ProposedMessages: batchEvents(3, "E")}); err != nil {
		t.Fatal(err)
	}
	if err := call.Send(&streams.BatchAppendReq{CorrelationId: corr, ProposedMessages: batchEvents(3, "E"), IsFinal: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := detailOf(t, resp.GetError()).(*shared.MaximumAppendSizeExceeded); !ok || !strings.Contains(resp.GetError().GetMessage(), "more than 5 events") {
		t.Fatalf("BatchAppend write of 6 events = %v, want MaximumAppendSizeExceeded naming the cap", resp)
	}
	_ = call.CloseSend()

	// AppendSession: the cap holds across the session's streams.
	rec := func(n int) []*v2streams.AppendRecord {
		out := make([]*v2streams.AppendRecord, n)
		for i := range out {
			out[i] = &v2streams.AppendRecord{Schema: &v2streams.SchemaInfo{Name: "E", Format: v2streams.SchemaFormat_SCHEMA_FORMAT_BYTES}, Data: []byte("x")}
		}
		return out
	}
	if err := appendSession(t, srv, &v2streams.AppendRequest{Stream: "cap-a-" + uuid.NewString(), Records: rec(3)},
		&v2streams.AppendRequest{Stream: "cap-b-" + uuid.NewString(), Records: rec(2)}); err != nil {
		t.Fatalf("AppendSession of 5 records: %v", err)
	}
	err = appendSession(t, srv, &v2streams.AppendRequest{Stream: "cap-a-" + uuid.NewString(), Records: rec(3)},
		&v2streams.AppendRequest{Stream: "cap-b-" + uuid.NewString(), Records: rec(3)})
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "more than 5 records") {
		t.Fatalf("AppendSession of 6 records = %v, want Aborted naming the cap", err)
	}
}
