package emulator

import (
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// The RPCs the emulator serves and the targets that fuzz them:
//
//	Streams.Append                          FuzzAppend, FuzzAppendReadRoundTrip
//	Streams.BatchAppend                     FuzzBatchAppend
//	Streams.Read (reads, subscriptions)     FuzzRead, FuzzReadFilter
//	Streams.Delete, Streams.Tombstone       FuzzDeleteTombstone
//	StreamsService.AppendSession (v2)       FuzzAppendSession
//	PersistentSubscriptions.* (Create only
//	  implemented, the rest Unimplemented)  FuzzPersistentSubscriptions
//	ServerFeatures.GetSupportedMethods,
//	  Gossip.Read (and authentication)      FuzzFeaturesGossipAuth

// FuzzReadFilter reads and subscribes to $all with a filter built from
// fuzzed fields: regex or prefix, on event type or stream name, window,
// checkpoint multiplier, direction and count. A finite read must end, a
// subscription must reach caught-up, and nothing may panic, answer Internal
// or outlast the call (a catastrophic regex ends with ResourceExhausted).
func FuzzReadFilter(f *testing.F) {
	fs := newFuzzServer(f)
	f.Add("^(a+)+$", "", false, true, false, uint32(32), uint32(1), uint64(0))
	f.Add("^(a+)+$", "", false, false, true, uint32(0), uint32(0), uint64(50))
	f.Add("", "fuzz-", true, true, false, uint32(2), uint32(3), uint64(0))
	f.Add("", "Fuzz", false, false, false, uint32(1), uint32(1), uint64(3))
	f.Add(`^(?!\$)`, "", true, false, true, uint32(4096), uint32(1), uint64(100))
	f.Add("(?<name", "", false, true, false, uint32(32), uint32(1), uint64(0))
	f.Add("", "", false, true, false, uint32(32), uint32(0), uint64(0))
	client := streams.NewStreamsClient(fs.cc)
	f.Fuzz(func(t *testing.T, regex, prefix string, byStream, subscription, backwards bool, window, multiplier uint32, count uint64) {
		if !utf8.ValidString(regex) || !utf8.ValidString(prefix) {
			t.Skip() // not encodable as a protobuf string
		}
		expr := &streams.ReadReq_Options_FilterOptions_Expression{Regex: regex}
		if regex == "" && prefix != "" {
			expr.Prefix = []string{prefix}
		}
		fo := &streams.ReadReq_Options_FilterOptions{CheckpointIntervalMultiplier: multiplier,
			Window: &streams.ReadReq_Options_FilterOptions_Max{Max: window}}
		if byStream {
			fo.Filter = &streams.ReadReq_Options_FilterOptions_StreamIdentifier{StreamIdentifier: expr}
		} else {
			fo.Filter = &streams.ReadReq_Options_FilterOptions_EventType{EventType: expr}
		}
		req := rdAllReq(count%1000, fo)
		if backwards {
			req.Options.ReadDirection = streams.ReadReq_Options_Backwards
			req.Options.GetAll().AllOption = &streams.ReadReq_Options_AllOptions_End{End: &shared.Empty{}}
		}
		if subscription {
			req.Options.CountOption = &streams.ReadReq_Options_Subscription{Subscription: &streams.ReadReq_Options_SubscriptionOptions{}}
		}
		fs.read(t, client, req)
	})
}

// FuzzPersistentSubscriptions sends each PersistentSubscriptions RPC a
// request decoded from fuzzed bytes: Create is implemented, the others must
// answer Unimplemented cleanly.
func FuzzPersistentSubscriptions(f *testing.F) {
	fs := newFuzzServer(f)
	create := func(o *persistent.CreateReq_Options) []byte { return marshal(f, &persistent.CreateReq{Options: o}) }
	f.Add(uint8(0), create(&persistent.CreateReq_Options{GroupName: "g", StreamOption: &persistent.CreateReq_Options_Stream{
		Stream: &persistent.CreateReq_StreamOptions{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("fuzz-a")}}}}))
	f.Add(uint8(0), create(&persistent.CreateReq_Options{GroupName: "g", StreamOption: &persistent.CreateReq_Options_All{
		All: &persistent.CreateReq_AllOptions{}}}))
	//lint:ignore SA1019 the deprecated field is still part of the protocol
	f.Add(uint8(0), create(&persistent.CreateReq_Options{GroupName: "legacy", StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("s")}}))
	f.Add(uint8(0), create(&persistent.CreateReq_Options{}))
	f.Add(uint8(1), marshal(f, &persistent.UpdateReq{Options: &persistent.UpdateReq_Options{GroupName: "g"}}))
	f.Add(uint8(2), marshal(f, &persistent.DeleteReq{Options: &persistent.DeleteReq_Options{GroupName: "g"}}))
	f.Add(uint8(3), marshal(f, &persistent.GetInfoReq{Options: &persistent.GetInfoReq_Options{GroupName: "g"}}))
	f.Add(uint8(4), marshal(f, &persistent.ReplayParkedReq{Options: &persistent.ReplayParkedReq_Options{GroupName: "g"}}))
	f.Add(uint8(5), marshal(f, &persistent.ListReq{Options: &persistent.ListReq_Options{}}))
	f.Add(uint8(6), []byte{})
	f.Add(uint8(7), marshal(f, &persistent.ReadReq{Content: &persistent.ReadReq_Options_{Options: &persistent.ReadReq_Options{GroupName: "g"}}}))
	client := persistent.NewPersistentSubscriptionsClient(fs.cc)
	f.Fuzz(func(t *testing.T, method uint8, data []byte) {
		ctx := fuzzCtx(t)
		var err error
		switch method % 8 {
		case 0:
			_, err = callDecoded(t, data, func(r *persistent.CreateReq) (*persistent.CreateResp, error) { return client.Create(ctx, r) })
		case 1:
			_, err = callDecoded(t, data, func(r *persistent.UpdateReq) (*persistent.UpdateResp, error) { return client.Update(ctx, r) })
		case 2:
			_, err = callDecoded(t, data, func(r *persistent.DeleteReq) (*persistent.DeleteResp, error) { return client.Delete(ctx, r) })
		case 3:
			_, err = callDecoded(t, data, func(r *persistent.GetInfoReq) (*persistent.GetInfoResp, error) { return client.GetInfo(ctx, r) })
		case 4:
			_, err = callDecoded(t, data, func(r *persistent.ReplayParkedReq) (*persistent.ReplayParkedResp, error) {
				return client.ReplayParked(ctx, r)
			})
		case 5:
			_, err = callDecoded(t, data, func(r *persistent.ListReq) (*persistent.ListResp, error) { return client.List(ctx, r) })
		case 6:
			_, err = callDecoded(t, data, func(r *shared.Empty) (*shared.Empty, error) { return client.RestartSubsystem(ctx, r) })
		default:
			var req persistent.ReadReq
			if proto.Unmarshal(data, &req) != nil {
				t.Skip()
			}
			call, cerr := client.Read(ctx)
			if cerr != nil {
				t.Fatal(cerr)
			}
			_ = call.Send(&req)
			_ = call.CloseSend()
			_, err = call.Recv()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		fs.check(t, err)
	})
}

// callDecoded decodes data as the request of a unary call (skipping the
// input when it does not decode) and makes the call.
func callDecoded[Req, Resp any, PReq interface {
	*Req
	proto.Message
}](t *testing.T, data []byte, call func(PReq) (Resp, error)) (Resp, error) {
	t.Helper()
	req := PReq(new(Req))
	if proto.Unmarshal(data, req) != nil {
		t.Skip()
	}
	return call(req)
}

// FuzzFeaturesGossipAuth calls ServerFeatures.GetSupportedMethods and
// Gossip.Read with a request decoded from fuzzed bytes, on the plaintext or
// the TLS listener, with a fuzzed authorization header: the TLS listener
// parses it, so bad credentials must give Unauthenticated, never a crash.
func FuzzFeaturesGossipAuth(f *testing.F) {
	fs := newFuzzServerWith(f, Options{TLSListen: "127.0.0.1:0"})
	tlsConn := rawTLSConn(f, fs.srv)
	f.Add(false, true, []byte{}, "Basic YWRtaW46Y2hhbmdlaXQ=")
	f.Add(true, true, []byte{}, "Basic b3BzOmNoYW5nZWl0")
	f.Add(false, true, []byte{}, "Basic !!!")
	f.Add(true, true, []byte{}, "Bearer x")
	f.Add(false, false, []byte{0x0a, 0x00}, "")
	f.Add(true, false, []byte{}, "Basic YWRtaW4=")
	f.Fuzz(func(t *testing.T, gossipCall, secure bool, data []byte, authorization string) {
		var req shared.Empty
		if proto.Unmarshal(data, &req) != nil {
			t.Skip()
		}
		for i := 0; i < len(authorization); i++ {
			if c := authorization[i]; c < 0x20 || c > 0x7e {
				t.Skip() // not a valid header value: the client refuses it
			}
		}
		ctx := fuzzCtx(t)
		if authorization != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
		}
		cc := fs.cc
		if secure {
			cc = tlsConn
		}
		var err error
		if gossipCall {
			_, err = gossip.NewGossipClient(cc).Read(ctx, &req)
		} else {
			_, err = serverfeatures.NewServerFeaturesClient(cc).GetSupportedMethods(ctx, &req)
		}
		fs.check(t, err)
	})
}
