package emulator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"

	"github.com/projector-dev/projector/internal/poll"
)

func TestSubscriptionCap(t *testing.T) {
	f := newReadFixture(t, Options{MaxSubscriptions: 2})
	subReq := func() *streams.ReadReq {
		req := rdAllReq(0, nil)
		req.Options.CountOption = &streams.ReadReq_Options_Subscription{}
		return req
	}
	ctx := rdCtx(t)
	firstCtx, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	rdSubscribe(t, firstCtx, f, subReq())
	rdSubscribe(t, ctx, f, subReq())

	refused := func() error {
		rc, err := f.raw.Read(ctx, subReq())
		if err != nil {
			t.Fatal(err)
		}
		_, err = rc.Recv()
		return err
	}
	if err := refused(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "at most 2 subscriptions") {
		t.Fatalf("third subscription = %v, want ResourceExhausted naming the limit", err)
	}
	if n := f.store.ActiveSubscriptions(); n != 2 {
		t.Fatalf("ActiveSubscriptions = %d after a refused one, want 2", n)
	}

	// A freed slot is reused.
	cancelFirst()
	poll.UntilNil(t, 5*time.Second, "the cancelled subscription has ended", func() error {
		if n := f.store.ActiveSubscriptions(); n != 1 {
			return fmt.Errorf("ActiveSubscriptions = %d after a cancel, want 1", n)
		}
		return nil
	})
	rdSubscribe(t, ctx, f, subReq())
	// Stream subscriptions share the cap.
	stream := rdAllReq(0, nil)
	stream.Options.StreamOption = &streams.ReadReq_Options_Stream{Stream: &streams.ReadReq_Options_StreamOptions{
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("capped")}, RevisionOption: &streams.ReadReq_Options_StreamOptions_Start{}}}
	stream.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	rc, err := f.raw.Read(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("stream subscription beyond the cap = %v, want ResourceExhausted", err)
	}
}
