package emulator

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestReadRequestValidation(t *testing.T) {
	f := newReadFixture(t, Options{})
	noUUID := rdStreamReq("x", false, 1)
	noUUID.Options.UuidOption = nil
	backSub := rdAllReq(0, nil)
	backSub.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	backSub.Options.ReadDirection = streams.ReadReq_Options_Backwards
	streamFilter := rdStreamReq("x", false, 1)
	streamFilter.Options.FilterOption = &streams.ReadReq_Options_Filter{Filter: rdTypeRegex("x")}
	noFilterCase := rdAllReq(1, nil)
	noFilterCase.Options.FilterOption = nil
	zeroMultiplier := rdAllReq(0, rdTypeRegex("x"))
	zeroMultiplier.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	zeroMultiplier.Options.GetFilter().CheckpointIntervalMultiplier = 0
	cases := []struct {
		name string
		req  *streams.ReadReq
		code codes.Code
		msg  string
	}{
		{"missing uuid option", noUUID, codes.InvalidArgument, "'uuidOption' is a required argument"},
		{"backwards subscription", backSub, codes.InvalidArgument, "The combination of (All, Subscription, Backwards, NoFilter) is invalid."},
		{"filtered stream read", streamFilter, codes.InvalidArgument, "The combination of (Stream, Count, Forwards, Filter) is invalid."},
		{"no filter option", noFilterCase, codes.InvalidArgument, "The combination of (All, Count, Forwards, None) is invalid."},
		{"invalid regex", rdAllReq(1, rdTypeRegex(`(unclosed`)), codes.InvalidArgument, "invalid filter regex"},
		{"zero checkpoint multiplier", zeroMultiplier, codes.Unknown, "checkpointIntervalMultiplier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := f.raw.Read(rdCtx(t), tc.req)
			if err == nil {
				_, err = rdRecvAll(t, rc)
			}
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestReadStringUUIDsAndLinks(t *testing.T) {
	f := newReadFixture(t, Options{})
	target := stAppend(t, f.store, "target", expNoStream, stEvents(3, "E")...)
	_ = target
	stAppend(t, f.store, "links", expNoStream,
		ProposedEvent{ID: uuid.New(), Type: "$>", Data: []byte("1@target")},
		ProposedEvent{ID: uuid.New(), Type: "$>", Data: []byte("7@target")})
	tgt := f.store.streams["target"].events[1]
	links := f.store.streams["links"].events

	got, err := f.readStream(t, "links", kurrentdb.ReadStreamOptions{ResolveLinkTos: true}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Event == nil || got[0].Event.EventID != tgt.id || got[0].Link == nil || got[0].Link.EventID != links[0].id ||
		*got[0].Commit != links[0].pos {
		t.Fatalf("resolved link = %+v", got[0])
	}
	if got[1].Event != nil || got[1].Link == nil || got[1].Link.EventID != links[1].id {
		t.Fatalf("link to a missing event = %+v, want a link without event", got[1])
	}
	got, _ = f.readStream(t, "links", kurrentdb.ReadStreamOptions{}, 10)
	if got[0].Link != nil || got[0].Event.EventType != "$>" || string(got[0].Event.Data) != "1@target" {
		t.Fatalf("unresolved link = %+v", got[0])
	}

	req := rdStreamReq("target", false, 1)
	req.Options.UuidOption.Content = &streams.ReadReq_Options_UUIDOption_String_{}
	rc, err := f.raw.Read(rdCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := rdRecvAll(t, rc)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("string-id read: %d messages, %v", len(msgs), err)
	}
	want := f.store.streams["target"].events[0].id.String()
	if id := msgs[0].GetEvent().GetEvent().GetId().GetString_(); id != want {
		t.Fatalf("string id = %q, want %q", id, want)
	}
}
