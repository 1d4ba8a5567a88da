package emulator

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// FuzzRead feeds Streams.Read a request decoded from fuzzed bytes. A
// finite read must end, a subscription must reach caught-up.
func FuzzRead(f *testing.F) {
	fs := newFuzzServer(f)
	structured := &streams.ReadReq_Options_UUIDOption{Content: &streams.ReadReq_Options_UUIDOption_Structured{Structured: &shared.Empty{}}}
	streamOpt := &streams.ReadReq_Options_Stream{Stream: &streams.ReadReq_Options_StreamOptions{
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte("fuzz-a")},
		RevisionOption:   &streams.ReadReq_Options_StreamOptions_Start{Start: &shared.Empty{}},
	}}
	allOpt := &streams.ReadReq_Options_All{All: &streams.ReadReq_Options_AllOptions{
		AllOption: &streams.ReadReq_Options_AllOptions_Start{Start: &shared.Empty{}},
	}}
	count := &streams.ReadReq_Options_Count{Count: 10}
	sub := &streams.ReadReq_Options_Subscription{Subscription: &streams.ReadReq_Options_SubscriptionOptions{}}
	noFilter := &streams.ReadReq_Options_NoFilter{NoFilter: &shared.Empty{}}
	filter := &streams.ReadReq_Options_Filter{Filter: &streams.ReadReq_Options_FilterOptions{
		Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{Regex: "^(?!\\$).*"}},
		Window: &streams.ReadReq_Options_FilterOptions_Max{Max: 32}, CheckpointIntervalMultiplier: 1,
	}}
	for _, o := range []*streams.ReadReq_Options{
		{StreamOption: streamOpt, CountOption: count, FilterOption: noFilter, UuidOption: structured},
		{StreamOption: allOpt, CountOption: count, FilterOption: noFilter, UuidOption: structured, ReadDirection: streams.ReadReq_Options_Backwards},
		{StreamOption: allOpt, CountOption: sub, FilterOption: filter, UuidOption: structured},
		{StreamOption: streamOpt, CountOption: sub, FilterOption: noFilter, UuidOption: structured},
		{StreamOption: streamOpt, CountOption: count, FilterOption: filter},
	} {
		f.Add(marshal(f, &streams.ReadReq{Options: o}))
	}
	client := streams.NewStreamsClient(fs.cc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req streams.ReadReq
		if proto.Unmarshal(data, &req) != nil {
			t.Skip()
		}
		fs.read(t, client, &req)
	})
}

// FuzzAppendReadRoundTrip appends one event with fuzzed stream name, type,
// content type, data and metadata, then reads it back from the stream and
// from $all: the reads must decode and return exactly what was written.
func FuzzAppendReadRoundTrip(f *testing.F) {
	fs := newFuzzServer(f)
	f.Add("orders-1", "OrderPlaced", true, []byte(`{"id":1}`), []byte(`{"m":1}`))
	f.Add("$$weird", "$metadata", false, []byte{}, []byte{0, 1, 2})
	f.Add("ünïcödé", "τύπος", false, []byte{0xff, 0xfe}, []byte{})
	client := streams.NewStreamsClient(fs.cc)
	f.Fuzz(func(t *testing.T, stream, typ string, isJSON bool, data, meta []byte) {
		if stream == "" || len(data)+len(meta)+2*len(typ) > 4096 {
			t.Skip()
		}
		ct := "application/octet-stream"
		if isJSON {
			ct = "application/json"
		}
		id := uuid.New()
		pm := &streams.AppendReq_ProposedMessage{Id: protoUUID(id), Metadata: map[string]string{"type": typ, "content-type": ct},
			Data: data, CustomMetadata: meta}
		if _, err := proto.Marshal(pm); err != nil {
			t.Skip() // not encodable (a type that is not UTF-8)
		}
		call, err := client.Append(fuzzCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = call.Send(appendOptions(stream, &streams.AppendReq_Options_Any{Any: &shared.Empty{}}))
		_ = call.Send(appendEvent(pm))
		resp, err := call.CloseAndRecv()
		fs.check(t, err)
		if err != nil {
			return // refused (a deleted stream, a reserved name): nothing to read back
		}
		pos := resp.GetSuccess().GetPosition().GetCommitPosition()
		if resp.GetSuccess() == nil || pos == 0 {
			t.Fatalf("append response = %v, want success with a position", resp)
		}

		structured := &streams.ReadReq_Options_UUIDOption{Content: &streams.ReadReq_Options_UUIDOption_Structured{Structured: &shared.Empty{}}}
		backwards := func(o *streams.ReadReq_Options) *streams.ReadResp_ReadEvent_RecordedEvent {
			t.Helper()
			o.UuidOption, o.ReadDirection = structured, streams.ReadReq_Options_Backwards
			o.CountOption = &streams.ReadReq_Options_Count{Count: 1}
			o.FilterOption = &streams.ReadReq_Options_NoFilter{NoFilter: &shared.Empty{}}
			rc, err := client.Read(fuzzCtx(t), &streams.ReadReq{Options: o})
			if err != nil {
				t.Fatal(err)
			}
			var got *streams.ReadResp_ReadEvent_RecordedEvent
			for {
				r, err := rc.Recv()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						fs.check(t, err)
						t.Fatalf("read back: %v", err)
					}
					return got
				}
				if got == nil {
					got = r.GetEvent().GetEvent()
				}
			}
		}
		fromStream := backwards(&streams.ReadReq_Options{StreamOption: &streams.ReadReq_Options_Stream{Stream: &streams.ReadReq_Options_StreamOptions{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
			RevisionOption:   &streams.ReadReq_Options_StreamOptions_End{End: &shared.Empty{}},
		}}})
		fromAll := backwards(&streams.ReadReq_Options{StreamOption: &streams.ReadReq_Options_All{All: &streams.ReadReq_Options_AllOptions{
			AllOption: &streams.ReadReq_Options_AllOptions_Position{Position: &streams.ReadReq_Options_Position{CommitPosition: pos + 1, PreparePosition: pos + 1}},
		}}})
		for name, ev := range map[string]*streams.ReadResp_ReadEvent_RecordedEvent{"stream": fromStream, "$all": fromAll} {
			if ev == nil {
				if name == "stream" && strings.HasPrefix(stream, "$$") {
					continue // a metastream keeps only what its metadata allows
				}
				t.Fatalf("%s read returned no event", name)
			}
			gotID, _ := parseProposedID(ev.GetId())
			if gotID != id || string(ev.GetStreamIdentifier().GetStreamName()) != stream || ev.GetMetadata()["type"] != typ ||
				ev.GetMetadata()["content-type"] != ct || !bytes.Equal(ev.GetData(), data) || !bytes.Equal(ev.GetCustomMetadata(), meta) ||
				ev.GetCommitPosition() != pos {
				t.Fatalf("%s read = %v, want id %s on %q type %q %s data %q meta %q at %d", name, ev, id, stream, typ, ct, data, meta, pos)
			}
		}
	})
}
