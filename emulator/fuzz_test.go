package emulator

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	v2streams "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
)

// fuzzServer is an emulator for one fuzz target. Every panic recovered by
// the server is logged at error level, so the observed logs tell whether an
// input crashed a handler.
type fuzzServer struct {
	srv  *Server
	cc   *grpc.ClientConn
	logs *observer.ObservedLogs
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	return newFuzzServerWith(f, Options{})
}

// newFuzzServerWith starts a fuzz server with opts (plus small limits, a
// short filter budget and an observed logger) and writes its data: three
// streams of FuzzEvent, and one event whose type makes a backtracking regex
// such as ^(a+)+$ catastrophic.
func newFuzzServerWith(f *testing.F, opts Options) *fuzzServer {
	f.Helper()
	core, logs := observer.New(zapcore.ErrorLevel)
	opts.Logger, opts.MaxAppendEventSize, opts.MaxAppendSize = zap.New(core), 4096, 1<<16
	opts.FilterBudget = 200 * time.Millisecond
	srv, err := Start(context.Background(), opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	fs := &fuzzServer{srv: srv, cc: rawConn(f, srv), logs: logs}
	// Some data to read, delete and conflict with.
	c := streams.NewStreamsClient(fs.cc)
	crafted, err := c.Append(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	_ = crafted.Send(appendOptions("fuzz-crafted", &streams.AppendReq_Options_Any{Any: &shared.Empty{}}))
	_ = crafted.Send(appendEvent(proposed(strings.Repeat("a", 28)+"!", "application/octet-stream")))
	if _, err := crafted.CloseAndRecv(); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"fuzz-a", "fuzz-b", "$fuzz-sys"} {
		call, err := c.Append(context.Background())
		if err != nil {
			f.Fatal(err)
		}
		_ = call.Send(appendOptions(s, &streams.AppendReq_Options_Any{Any: &shared.Empty{}}))
		for i := 0; i < 3; i++ {
			_ = call.Send(appendEvent(proposed("FuzzEvent", "application/json")))
		}
		if _, err := call.CloseAndRecv(); err != nil {
			f.Fatal(err)
		}
	}
	return fs
}

// check fails the input when the server panicked or answered Internal, and
// when it stopped answering.
func (fs *fuzzServer) check(t *testing.T, err error) {
	t.Helper()
	if panics := fs.logs.FilterMessage("panic in rpc handler").TakeAll(); len(panics) > 0 {
		t.Fatalf("handler panicked: %v", panics[0].ContextMap())
	}
	if status.Code(err) == codes.Internal {
		t.Fatalf("Internal error: %v (logs %v)", err, fs.logs.TakeAll())
	}
	if status.Code(err) == codes.DeadlineExceeded {
		t.Fatalf("the call did not finish in time: %v", err)
	}
}

// read sends req and receives until the read ends or a subscription catches up: the read must
// end cleanly or with an error status (see check).
func (fs *fuzzServer) read(t *testing.T, client streams.StreamsClient, req *streams.ReadReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, err := client.Read(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := call.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			fs.check(t, err)
			return
		}
		if resp.GetCaughtUp() != nil {
			return
		}
	}
}

func fuzzCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func marshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzAppend feeds Streams.Append an options message and an event message,
// each decoded from fuzzed bytes.
func FuzzAppend(f *testing.F) {
	fs := newFuzzServer(f)
	opts := marshal(f, appendOptions("fuzz-a", &streams.AppendReq_Options_Revision{Revision: 2}))
	f.Add(opts, marshal(f, appendEvent(proposed("E", "application/json"))))
	f.Add(marshal(f, appendOptions("new", &streams.AppendReq_Options_NoStream{NoStream: &shared.Empty{}})), marshal(f, appendEvent(proposed("E", "x"))))
	f.Add(marshal(f, appendOptions("fuzz-b", &streams.AppendReq_Options_StreamExists{StreamExists: &shared.Empty{}})), []byte{})
	f.Add([]byte{}, []byte{})
	f.Add(marshal(f, appendEvent(proposed("E", "x"))), opts)
	client := streams.NewStreamsClient(fs.cc)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fuzzClientStream(t, fs, first, second, client.Append)
	})
}

// fuzzClientStream decodes first and second as requests (skipping the input
// unless both decode), sends them on a client stream that open starts (second
// only when not empty) and checks the answer.
func fuzzClientStream[Req, Resp any, PReq interface {
	*Req
	proto.Message
}](t *testing.T, fs *fuzzServer, first, second []byte, open func(context.Context, ...grpc.CallOption) (grpc.ClientStreamingClient[Req, Resp], error)) {
	t.Helper()
	m1, m2 := PReq(new(Req)), PReq(new(Req))
	if proto.Unmarshal(first, m1) != nil || proto.Unmarshal(second, m2) != nil {
		t.Skip()
	}
	call, err := open(fuzzCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = call.Send(m1)
	if len(second) > 0 {
		_ = call.Send(m2)
	}
	_, err = call.CloseAndRecv()
	fs.check(t, err)
}

// FuzzBatchAppend feeds Streams.BatchAppend two requests decoded from
// fuzzed bytes.
func FuzzBatchAppend(f *testing.F) {
	fs := newFuzzServer(f)
	corr := protoUUID(uuid.New())
	opts := batchOptions("fuzz-a", &streams.BatchAppendReq_Options_Any{Any: &emptypb.Empty{}})
	f.Add(marshal(f, &streams.BatchAppendReq{CorrelationId: corr, Options: opts, ProposedMessages: batchEvents(2, "E")}),
		marshal(f, &streams.BatchAppendReq{CorrelationId: corr, ProposedMessages: batchEvents(1, "E"), IsFinal: true}))
	f.Add(marshal(f, &streams.BatchAppendReq{CorrelationId: corr, Options: batchOptions("x", &streams.BatchAppendReq_Options_StreamPosition{StreamPosition: 9}), IsFinal: true}), []byte{})
	f.Add([]byte{}, []byte{})
	client := streams.NewStreamsClient(fs.cc)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var m1, m2 streams.BatchAppendReq
		if proto.Unmarshal(first, &m1) != nil || proto.Unmarshal(second, &m2) != nil {
			t.Skip()
		}
		call, err := client.BatchAppend(fuzzCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = call.Send(&m1)
		_ = call.Send(&m2)
		_ = call.CloseSend()
		for {
			resp, err := call.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				fs.check(t, err)
				return
			}
			if st := resp.GetError(); st != nil && codes.Code(st.GetCode()) == codes.Internal {
				t.Fatalf("Internal result: %v", st)
			}
		}
	})
}

// FuzzAppendSession feeds the v2 AppendSession two requests decoded from
// fuzzed bytes.
func FuzzAppendSession(f *testing.F) {
	fs := newFuzzServer(f)
	rev := int64(-1)
	rec := &v2streams.AppendRecord{Schema: &v2streams.SchemaInfo{Name: "E", Format: v2streams.SchemaFormat_SCHEMA_FORMAT_BYTES},
		Data: []byte("x"), Properties: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}}
	f.Add(marshal(f, &v2streams.AppendRequest{Stream: "s1", ExpectedRevision: &rev, Records: []*v2streams.AppendRecord{rec}}),
		marshal(f, &v2streams.AppendRequest{Stream: "fuzz-a", Records: []*v2streams.AppendRecord{rec}}))
	f.Add(marshal(f, &v2streams.AppendRequest{Stream: "S1"}), marshal(f, &v2streams.AppendRequest{Stream: "s1"}))
	f.Add([]byte{}, []byte{})
	client := v2streams.NewStreamsServiceClient(fs.cc)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fuzzClientStream(t, fs, first, second, client.AppendSession)
	})
}

// FuzzDeleteTombstone feeds Delete and Tombstone requests decoded from
// fuzzed bytes.
func FuzzDeleteTombstone(f *testing.F) {
	fs := newFuzzServer(f)
	f.Add(marshal(f, &streams.DeleteReq{Options: &streams.DeleteReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte("fuzz-b")},
		ExpectedStreamRevision: &streams.DeleteReq_Options_Revision{Revision: 1},
	}}), false)
	f.Add(marshal(f, &streams.TombstoneReq{Options: &streams.TombstoneReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte("fuzz-x")},
		ExpectedStreamRevision: &streams.TombstoneReq_Options_NoStream{NoStream: &shared.Empty{}},
	}}), true)
	f.Add([]byte{}, false)
	client := streams.NewStreamsClient(fs.cc)
	f.Fuzz(func(t *testing.T, data []byte, tombstone bool) {
		var err error
		if tombstone {
			var req streams.TombstoneReq
			if proto.Unmarshal(data, &req) != nil {
				t.Skip()
			}
			_, err = client.Tombstone(fuzzCtx(t), &req)
		} else {
			var req streams.DeleteReq
			if proto.Unmarshal(data, &req) != nil {
				t.Skip()
			}
			_, err = client.Delete(fuzzCtx(t), &req)
		}
		fs.check(t, err)
	})
}

func TestRecoverInterceptors(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	s := &Server{log: zap.New(core)}
	_, err := s.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"},
		func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("unary panic: err = %v, want Internal", err)
	}
	err = s.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Z"},
		func(any, grpc.ServerStream) error { panic("bang") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream panic: err = %v, want Internal", err)
	}
	if n := logs.FilterMessage("panic in rpc handler").Len(); n != 2 {
		t.Fatalf("logged %d panics, want 2", n)
	}
}
