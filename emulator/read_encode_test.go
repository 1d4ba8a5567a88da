package emulator

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// wantRecorded builds, with the generated types, the RecordedEvent a read
// must carry for r.
func wantRecorded(r *record, stringIDs bool) *streams.ReadResp_ReadEvent_RecordedEvent {
	id := &shared.UUID{}
	if stringIDs {
		id.Value = &shared.UUID_String_{String_: r.id.String()}
	} else {
		id.Value = &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
			MostSignificantBits:  int64(binary.BigEndian.Uint64(r.id[:8])),
			LeastSignificantBits: int64(binary.BigEndian.Uint64(r.id[8:])),
		}}
	}
	ct := "application/octet-stream"
	if r.isJSON() {
		ct = "application/json"
	}
	return &streams.ReadResp_ReadEvent_RecordedEvent{
		Id:               id,
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream.name)},
		StreamRevision:   uint64(r.number),
		PreparePosition:  r.pos,
		CommitPosition:   r.pos,
		Metadata:         map[string]string{"type": r.typ, "created": r.createdStr, "content-type": ct},
		CustomMetadata:   r.meta,
		Data:             r.data,
	}
}

func TestEncodeEventMatchesGeneratedCode(t *testing.T) {
	st := &stream{name: "orders-1", nameB: []byte("orders-1")}
	recs := []*record{
		{pos: 256, number: 0, stream: st, id: uuid.New(), typ: "OrderPlaced", createdStr: "17000000000000000", flags: flagJSON, data: []byte(`{"a":1}`), meta: []byte(`{"m":2}`)},
		{pos: 1 << 40, number: 1<<63 - 1, stream: st, id: uuid.MustParse("ffffffff-ffff-ffff-ffff-ffffffffffff"), typ: "$streamDeleted", createdStr: "1"},
		{pos: 300, number: 7, stream: st, id: uuid.Nil, typ: "", createdStr: "0", data: make([]byte, 70000)},
	}
	for _, stringIDs := range []bool{false, true} {
		for i, r := range recs {
			for _, it := range []pageItem{{ev: r}, {ev: r, link: recs[0]}, {link: r}} {
				got := &streams.ReadResp{}
				b := appendEventResp(nil, it, stringIDs)
				if len(b) != eventRespSize(it, stringIDs) {
					t.Fatalf("encoded %d bytes, size says %d", len(b), eventRespSize(it, stringIDs))
				}
				if err := proto.Unmarshal(b, got); err != nil {
					t.Fatalf("record %d (string ids %v, link %v): %v", i, stringIDs, it.link != nil, err)
				}
				ev := &streams.ReadResp_ReadEvent{Position: &streams.ReadResp_ReadEvent_CommitPosition{CommitPosition: it.orig().pos}}
				if it.ev != nil {
					ev.Event = wantRecorded(it.ev, stringIDs)
				}
				if it.link != nil {
					ev.Link = wantRecorded(it.link, stringIDs)
				}
				want := &streams.ReadResp{Content: &streams.ReadResp_Event{Event: ev}}
				if !proto.Equal(got, want) {
					t.Fatalf("record %d (string ids %v):\n got %v\nwant %v", i, stringIDs, got, want)
				}
			}
		}
	}
}

// retainingSink is a Read stream that keeps every message sent, with the
// bytes its Marshal returned and a copy of them taken at send time: as
// gRPC's codec (which writes the bytes out after SendMsg returns) and a
// tracing or stats handler (which keep the message) do.
type retainingSink struct {
	ctx    context.Context
	msgs   []any
	alias  [][]byte // what Marshal returned, not copied
	copies [][]byte // copies taken inside SendMsg
}

func (r *retainingSink) Context() context.Context { return r.ctx }

func (r *retainingSink) Send(m *streams.ReadResp) error { return r.SendMsg(m) }

func (r *retainingSink) SendMsg(m any) error {
	b, err := proto.Marshal(protoadapt.MessageV2Of(m.(protoadapt.MessageV1)))
	if err != nil {
		return err
	}
	r.msgs = append(r.msgs, m)
	r.alias = append(r.alias, b)
	r.copies = append(r.copies, bytes.Clone(b))
	return nil
}

// TestSenderNeverTouchesSentMessages reads events small enough for gRPC to
// keep the encoder's own bytes and large enough to be copied into a pooled
// buffer, and checks that no message or byte handed to SendMsg changed
// afterwards, and that each one decodes to its own event.
func TestSenderNeverTouchesSentMessages(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	var evs []ProposedEvent
	for i := 0; i < 40; i++ {
		data := `{"i":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("x", i*i*3) + `"}`
		evs = append(evs, stEvent("Sized", data))
	}
	if _, err := s.Append(StreamAppend{Stream: "sized", Expected: Expected{Kind: ExpectNoStream}, Events: evs}); err != nil {
		t.Fatal(err)
	}
	backwards := rdStreamReq("sized", true, 100)
	backwards.Options.GetStream().RevisionOption = &streams.ReadReq_Options_StreamOptions_End{}
	for _, req := range []*streams.ReadReq{rdStreamReq("sized", false, 100), backwards, rdAllReq(1000, nil)} {
		sink := &retainingSink{ctx: context.Background()}
		if err := s.serveRead(req, sink); err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, m := range sink.msgs {
			again, err := proto.Marshal(protoadapt.MessageV2Of(m.(protoadapt.MessageV1)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, sink.copies[i]) {
				t.Fatalf("message %d now encodes to other bytes than it was sent with", i)
			}
			if !bytes.Equal(sink.alias[i], sink.copies[i]) {
				t.Fatalf("the bytes of message %d changed after it was sent", i)
			}
			var resp streams.ReadResp
			if err := proto.Unmarshal(sink.copies[i], &resp); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if ev := resp.GetEvent().GetEvent(); ev != nil && ev.GetStreamIdentifier().GetStreamName() != nil &&
				string(ev.GetStreamIdentifier().GetStreamName()) == "sized" {
				got = append(got, strconv.FormatUint(ev.GetStreamRevision(), 10))
			}
		}
		for i := 1; i < len(sink.msgs); i++ {
			if sink.msgs[i] == sink.msgs[i-1] {
				t.Fatalf("messages %d and %d are the same object", i-1, i)
			}
		}
		if len(got) != 40 {
			t.Fatalf("read %d events of the stream, want 40", len(got))
		}
		seen := map[string]bool{}
		for _, rev := range got {
			if seen[rev] {
				t.Fatalf("revision %s sent twice: %v", rev, got)
			}
			seen[rev] = true
		}
	}
}

// FuzzEncodeEvent checks the hand-written encoder against the generated
// code for arbitrary records: the size it computes is the size it writes,
// and the bytes decode to the event the generated types would carry.
func FuzzEncodeEvent(f *testing.F) {
	f.Add("orders-1", "OrderPlaced", "17000000000000000", true, []byte(`{"a":1}`), []byte(`{"m":2}`), uint64(256), int64(0), []byte{1, 2}, false, false)
	f.Add("", "", "0", false, []byte{}, []byte{}, uint64(0), int64(1<<63-1), []byte{}, true, true)
	f.Add("ünï", "$>", "1", false, make([]byte, 300), []byte(nil), uint64(1<<63), int64(127), bytes.Repeat([]byte{0xff}, 16), true, false)
	f.Fuzz(func(t *testing.T, name, typ, created string, isJSON bool, data, meta []byte, pos uint64, number int64, id []byte, stringIDs, link bool) {
		if number < 0 || !utf8.ValidString(typ) || !utf8.ValidString(created) {
			t.Skip() // records never have these: types are checked UTF-8 on append
		}
		st := &stream{name: name, nameB: []byte(name)}
		r := &record{pos: pos, number: number, stream: st, typ: typ, createdStr: created, data: data, meta: meta}
		copy(r.id[:], id)
		if isJSON {
			r.flags = flagJSON
		}
		its := []pageItem{{ev: r}}
		if link {
			l := &record{pos: pos/2 + 1, number: 3, stream: &stream{name: "$ce-x", nameB: []byte("$ce-x")}, typ: "$>", createdStr: "5", data: []byte("1@x")}
			its = append(its, pageItem{ev: r, link: l}, pageItem{link: l})
		}
		for _, it := range its {
			b := appendEventResp(nil, it, stringIDs)
			if n := eventRespSize(it, stringIDs); len(b) != n {
				t.Fatalf("encoded %d bytes, size says %d", len(b), n)
			}
			var got streams.ReadResp
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			ev := &streams.ReadResp_ReadEvent{Position: &streams.ReadResp_ReadEvent_CommitPosition{CommitPosition: it.orig().pos}}
			if it.ev != nil {
				ev.Event = wantRecorded(it.ev, stringIDs)
			}
			if it.link != nil {
				ev.Link = wantRecorded(it.link, stringIDs)
			}
			if want := (&streams.ReadResp{Content: &streams.ReadResp_Event{Event: ev}}); !proto.Equal(&got, want) {
				t.Fatalf("got %v\nwant %v", &got, want)
			}
		}
	})
}
