package emulator

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

func TestInsecureListenerIgnoresCredentials(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	wrong := &kurrentdb.Credentials{Login: "admin", Password: "wrong"}
	_, err := c.AppendToStream(testCtx(t), "insecure-"+uuid.NewString(), kurrentdb.AppendToStreamOptions{Authenticated: wrong}, testEvents(1, "A")...)
	if err != nil {
		t.Fatalf("append with wrong credentials on the insecure listener: %v", err)
	}
	// Credentials are sent only over TLS; a raw header is ignored too.
	ctx := withBasicAuth(testCtx(t), "nobody", "nothing")
	rawAppendCtx := streams.NewStreamsClient(rawConn(t, srv))
	if _, err := rawAppendCtx.Delete(ctx, &streams.DeleteReq{Options: &streams.DeleteReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte("x-" + uuid.NewString())},
		ExpectedStreamRevision: &streams.DeleteReq_Options_Any{Any: &shared.Empty{}},
	}}); status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied {
		t.Fatalf("delete with unknown credentials on the insecure listener: %v", err)
	}
}

func TestTLSListenerAuthentication(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.TLSURI())
	ctx := testCtx(t)
	stream := "secure-" + uuid.NewString()
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "A")...); err != nil {
		t.Fatalf("append as admin: %v", err)
	}
	_, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{
		Authenticated: &kurrentdb.Credentials{Login: "admin", Password: "nope"},
	}, testEvents(1, "A")...)
	if got := errorCode(err); got != kurrentdb.ErrorCodeUnauthenticated {
		t.Fatalf("append with a wrong password: err = %v, want ErrorCodeUnauthenticated", err)
	}
	ops := &kurrentdb.Credentials{Login: "ops", Password: "changeit"}
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{Authenticated: ops}, testEvents(1, "A")...); err != nil {
		t.Fatalf("append to a user stream as ops: %v", err)
	}
	_, err = c.AppendToStream(ctx, "$sys-"+uuid.NewString(), kurrentdb.AppendToStreamOptions{Authenticated: ops}, testEvents(1, "A")...)
	if got := errorCode(err); got != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("append to a system stream as ops: err = %v, want ErrorCodeAccessDenied", err)
	}
	rs, err := c.ReadAll(ctx, kurrentdb.ReadAllOptions{Authenticated: ops}, 10)
	if err == nil {
		_, err = rs.Recv()
		rs.Close()
	}
	if got := errorCode(err); got != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("read $all as ops: err = %v, want ErrorCodeAccessDenied", err)
	}
}

func TestTLSListenerAnonymous(t *testing.T) {
	srv := startTest(t, Options{})
	cc := rawTLSConn(t, srv)
	ctx := testCtx(t)

	// Discovery works without credentials.
	if _, err := serverfeatures.NewServerFeaturesClient(cc).GetSupportedMethods(ctx, &shared.Empty{}); err != nil {
		t.Fatalf("anonymous ServerFeatures: %v", err)
	}
	if _, err := gossip.NewGossipClient(cc).Read(ctx, &shared.Empty{}); err != nil {
		t.Fatalf("anonymous Gossip: %v", err)
	}

	client := streams.NewStreamsClient(cc)
	var trailer metadata.MD
	_, err := client.Delete(ctx, &streams.DeleteReq{Options: &streams.DeleteReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte("x")},
		ExpectedStreamRevision: &streams.DeleteReq_Options_Any{Any: &shared.Empty{}},
	}}, grpc.Trailer(&trailer))
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "Access Denied" || first(trailer, "exception") != "access-denied" {
		t.Fatalf("anonymous delete: err = %v, trailers %v; want PermissionDenied \"Access Denied\" with exception=access-denied", err, trailer)
	}

	trailer = nil
	call, err := client.Append(ctx, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	_ = call.Send(appendOptions("x", &streams.AppendReq_Options_Any{Any: &shared.Empty{}}))
	_, err = call.CloseAndRecv()
	if status.Code(err) != codes.PermissionDenied || first(trailer, "exception") != "access-denied" {
		t.Fatalf("anonymous append: err = %v, trailers %v; want access denied", err, trailer)
	}

	for name, header := range map[string]string{
		"bearer":       "Bearer abc",
		"garbage":      "Basic !!!",
		"no colon":     "Basic YWRtaW4=",
		"unknown user": "Basic bWU6Y2hhbmdlaXQ=",
		"not a scheme": "Basic",
		"wrong scheme": "Digest xyz",
	} {
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "authorization", header)
		_, err := serverfeatures.NewServerFeaturesClient(cc).GetSupportedMethods(ctx, &shared.Empty{})
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "Unauthenticated" {
			t.Errorf("%s credentials: err = %v, want Unauthenticated", name, err)
		}
	}
}

func TestOpsUserAccessRules(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.TLSURI())
	ctx := testCtx(t)
	ops := &kurrentdb.Credentials{Login: "ops", Password: "changeit"}
	stream := "ops-" + uuid.NewString()
	if _, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{Authenticated: ops}, testEvents(1, "A")...); err != nil {
		t.Fatalf("ops append: %v", err)
	}
	// The metastream of a user stream is open to ops; a system stream's is not.
	if _, err := c.SetStreamMetadata(ctx, stream, kurrentdb.AppendToStreamOptions{Authenticated: ops}, kurrentdb.StreamMetadata{}); err != nil {
		t.Fatalf("ops setting a user stream's metadata: %v", err)
	}
	_, err := c.SetStreamMetadata(ctx, "$sys", kurrentdb.AppendToStreamOptions{Authenticated: ops}, kurrentdb.StreamMetadata{})
	if errorCode(err) != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("ops setting a system stream's metadata: err = %v, want access denied", err)
	}
	if _, err := c.DeleteStream(ctx, "$sys", kurrentdb.DeleteStreamOptions{Authenticated: ops}); err == nil {
		t.Fatal("ops deleting a system stream succeeded")
	}
	if _, err := c.DeleteStream(ctx, stream, kurrentdb.DeleteStreamOptions{Authenticated: ops}); err != nil {
		t.Fatalf("ops deleting a user stream: %v", err)
	}
}
