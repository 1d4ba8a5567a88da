package emulator

// The fixture and helpers of the read tests: an emulator with the official client and a raw
// gRPC client, raw read requests, a settable clock.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
