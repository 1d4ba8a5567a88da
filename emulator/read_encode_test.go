package emulator

import (
	"encoding/binary"
	"testing"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/protobuf/proto"
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
