package emulator

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
)

func TestCreatePersistentSubscription(t *testing.T) {
	srv := startTest(t, Options{})
	for _, uri := range []string{srv.URI(), srv.TLSURI()} {
		c := newTestClient(t, uri)
		stream, group := "ps-"+uuid.NewString(), "g-"+uuid.NewString()
		if err := c.CreatePersistentSubscription(testCtx(t), stream, group, kurrentdb.PersistentStreamSubscriptionOptions{}); err != nil {
			t.Fatalf("%s: create: %v", uri, err)
		}
		err := c.CreatePersistentSubscription(testCtx(t), stream, group, kurrentdb.PersistentStreamSubscriptionOptions{})
		if got := errorCode(err); got != kurrentdb.ErrorCodeResourceAlreadyExists {
			t.Fatalf("%s: duplicate create: err = %v, want ErrorCodeResourceAlreadyExists", uri, err)
		}
		if err := c.CreatePersistentSubscriptionToAll(testCtx(t), group, kurrentdb.PersistentAllSubscriptionOptions{}); err != nil {
			t.Fatalf("%s: create to $all: %v", uri, err)
		}
	}
	// Invalid credentials on the TLS listener.
	c := newTestClient(t, srv.TLSURI())
	err := c.CreatePersistentSubscription(testCtx(t), "s", "g", kurrentdb.PersistentStreamSubscriptionOptions{
		Authenticated: &kurrentdb.Credentials{Login: "admin", Password: "bad"},
	})
	if got := errorCode(err); got != kurrentdb.ErrorCodeUnauthenticated {
		t.Fatalf("create with bad credentials: err = %v, want ErrorCodeUnauthenticated", err)
	}
}

func TestCreatePersistentSubscriptionTrailers(t *testing.T) {
	srv := startTest(t, Options{})
	client := persistent.NewPersistentSubscriptionsClient(rawConn(t, srv))
	req := &persistent.CreateReq{Options: &persistent.CreateReq_Options{
		StreamOption: &persistent.CreateReq_Options_Stream{Stream: &persistent.CreateReq_StreamOptions{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("orders")},
		}},
		GroupName: "workers",
	}}
	if _, err := client.Create(testCtx(t), req); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	_, err := client.Create(testCtx(t), req, grpc.Trailer(&trailer))
	if st := status.Convert(err); st.Code() != codes.AlreadyExists || st.Message() != "Subscription group workers on stream orders exists." {
		t.Fatalf("duplicate: %v", err)
	}
	for k, v := range map[string]string{"exception": "persistent-subscription-exists", "stream-name": "orders", "group-name": "workers"} {
		if got := first(trailer, k); got != v {
			t.Errorf("trailer %s = %q, want %q", k, got, v)
		}
	}
	for name, bad := range map[string]*persistent.CreateReq{
		"no options": {},
		"no group":   {Options: &persistent.CreateReq_Options{StreamOption: req.Options.StreamOption}},
		"no stream":  {Options: &persistent.CreateReq_Options{GroupName: "g"}},
	} {
		if _, err := client.Create(testCtx(t), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
}
