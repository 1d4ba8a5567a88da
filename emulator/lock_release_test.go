package emulator

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// TestPanicUnderReadLockLeavesStoreUsable makes every read path panic while
// it holds the read lock, at each of its lock holds in turn. The server
// turns the panic into Internal; the lock must have been released, so
// appends and reads go on afterwards (a leaked read lock would block the
// next append until its deadline).
func TestPanicUnderReadLockLeavesStoreUsable(t *testing.T) {
	f := newReadFixture(t, Options{})
	stream := "locks-" + uuid.NewString()
	stAppend(t, f.store, stream, expAny, stEvents(3, "E")...)
	streamOpt := &streams.ReadReq_Options_Stream{Stream: &streams.ReadReq_Options_StreamOptions{
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
		RevisionOption:   &streams.ReadReq_Options_StreamOptions_Start{Start: &shared.Empty{}},
	}}
	readStream := func(sub bool) *streams.ReadReq {
		req := rdAllReq(10, nil)
		req.Options.StreamOption = streamOpt
		if sub {
			req.Options.CountOption = &streams.ReadReq_Options_Subscription{}
		}
		return req
	}
	subAll := func(filter *streams.ReadReq_Options_FilterOptions) *streams.ReadReq {
		req := rdAllReq(0, filter)
		req.Options.CountOption = &streams.ReadReq_Options_Subscription{}
		return req
	}
	prefix := &streams.ReadReq_Options_FilterOptions{
		Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{Prefix: []string{"E"}}},
		Window: &streams.ReadReq_Options_FilterOptions_Max{Max: 32}, CheckpointIntervalMultiplier: 1,
	}
	cases := []struct {
		name  string
		req   *streams.ReadReq
		holds int // lock holds before the read ends or catches up
	}{
		{"read stream", readStream(false), 1},
		{"read $all", rdAllReq(10, nil), 2},
		{"read $all filtered", rdAllReq(10, prefix), 2},
		{"subscribe to stream", readStream(true), 2},
		{"subscribe to $all", subAll(nil), 2},
		{"subscribe to $all filtered", subAll(prefix), 2},
	}
	for _, tc := range cases {
		for at := 1; at <= tc.holds; at++ {
			t.Run(fmt.Sprintf("%s/hold %d", tc.name, at), func(t *testing.T) {
				var holds atomic.Int32
				f.store.hooks.Store(&storeHooks{underReadLock: func() {
					if holds.Add(1) == int32(at) {
						panic("test panic under the read lock")
					}
				}})
				defer f.store.hooks.Store(nil)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				rc, err := f.raw.Read(ctx, tc.req)
				if err != nil {
					t.Fatal(err)
				}
				for {
					_, err := rc.Recv()
					if err == io.EOF {
						t.Fatalf("the read ended normally; the hook ran %d times, want a panic at hold %d", holds.Load(), at)
					}
					if err != nil {
						if status.Code(err) != codes.Internal {
							t.Fatalf("read ended with %v, want Internal from the recovered panic", err)
						}
						break
					}
				}
				f.store.hooks.Store(nil)
				// The status reached the client after the handler returned, so
				// its deferred unlocks have run and nothing else reads now.
				if !f.store.mu.TryLock() {
					f.store.mu.RUnlock() // free the leaked read lock, so the server can close
					t.Fatal("the store lock is still held after the panic: a read lock was not released")
				}
				f.store.mu.Unlock()
				if _, err := f.client.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "E")...); err != nil {
					t.Fatalf("append after the panic: %v", err)
				}
				if _, err := readToEnd(f.client.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 100)); err != nil {
					t.Fatalf("read after the panic: %v", err)
				}
			})
		}
	}
}
