package emulator

import (
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

func TestDeleteAndTombstone(t *testing.T) {
	srv := startTest(t, Options{})
	c := newTestClient(t, srv.URI())
	ctx := testCtx(t)
	soft, hard := "soft-"+uuid.NewString(), "hard-"+uuid.NewString()
	for _, s := range []string{soft, hard} {
		if _, err := c.AppendToStream(ctx, s, kurrentdb.AppendToStreamOptions{}, testEvents(2, "A")...); err != nil {
			t.Fatal(err)
		}
	}
	last := lastPosition(t, c, hard)

	del, err := c.DeleteStream(ctx, soft, kurrentdb.DeleteStreamOptions{StreamState: kurrentdb.Revision(1)})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if del.Position.Commit <= last || del.Position.Commit != del.Position.Prepare {
		t.Fatalf("delete position = %+v, want equal positions after %d", del.Position, last)
	}
	if _, err := readAllOf(t, c, soft); errorCode(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("read after soft delete: err = %v, want not found", err)
	}
	// A soft-deleted stream comes back on the next write, numbering on.
	res, err := c.AppendToStream(ctx, soft, kurrentdb.AppendToStreamOptions{}, testEvents(1, "B")...)
	if err != nil || res.NextExpectedVersion != 2 {
		t.Fatalf("append after soft delete = %+v, %v; want revision 2", res, err)
	}

	tomb, err := c.TombstoneStream(ctx, hard, kurrentdb.TombstoneStreamOptions{StreamState: kurrentdb.StreamExists{}})
	if err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if tomb.Position.Commit <= del.Position.Commit {
		t.Fatalf("tombstone position %+v is not after the delete's %+v", tomb.Position, del.Position)
	}
	if _, err := readAllOf(t, c, hard); errorCode(err) != kurrentdb.ErrorCodeStreamDeleted {
		t.Fatalf("read after tombstone: err = %v, want stream deleted", err)
	}
	if _, err := c.TombstoneStream(ctx, hard, kurrentdb.TombstoneStreamOptions{}); err == nil {
		t.Fatal("second tombstone succeeded, want stream deleted")
	}
}

func TestDeleteErrorsCarryTrailers(t *testing.T) {
	srv := startTest(t, Options{})
	client := streams.NewStreamsClient(rawConn(t, srv))
	stream := "del-" + uuid.NewString()
	rawAppend(t, client, stream, &streams.AppendReq_Options_Any{Any: &shared.Empty{}}, proposed("A", "application/json"))

	var trailer metadata.MD
	_, err := client.Delete(testCtx(t), &streams.DeleteReq{Options: &streams.DeleteReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte(stream)},
		ExpectedStreamRevision: &streams.DeleteReq_Options_Revision{Revision: 4},
	}}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete with a wrong revision: err = %v, want FailedPrecondition", err)
	}
	want := map[string]string{"exception": "wrong-expected-version", "stream-name": stream, "expected-version": "4", "actual-version": "0"}
	for k, v := range want {
		if got := first(trailer, k); got != v {
			t.Errorf("trailer %s = %q, want %q", k, got, v)
		}
	}

	if _, err := client.Tombstone(testCtx(t), &streams.TombstoneReq{Options: &streams.TombstoneReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte(stream)},
		ExpectedStreamRevision: &streams.TombstoneReq_Options_Any{Any: &shared.Empty{}},
	}}); err != nil {
		t.Fatal(err)
	}
	trailer = nil
	_, err = client.Delete(testCtx(t), &streams.DeleteReq{Options: &streams.DeleteReq_Options{
		StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte(stream)},
		ExpectedStreamRevision: &streams.DeleteReq_Options_Any{Any: &shared.Empty{}},
	}}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.FailedPrecondition || first(trailer, "exception") != "stream-deleted" || first(trailer, "stream-name") != stream {
		t.Fatalf("delete of a tombstoned stream: err = %v, trailers %v; want stream-deleted naming the stream", err, trailer)
	}

	for name, req := range map[string]*streams.DeleteReq{
		"no options":  {},
		"no stream":   {Options: &streams.DeleteReq_Options{ExpectedStreamRevision: &streams.DeleteReq_Options_Any{Any: &shared.Empty{}}}},
		"no revision": {Options: &streams.DeleteReq_Options{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("x")}}},
	} {
		if _, err := client.Delete(testCtx(t), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := client.Tombstone(testCtx(t), &streams.TombstoneReq{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("tombstone without options: err = %v, want InvalidArgument", err)
	}
}
