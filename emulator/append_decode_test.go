package emulator

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// FuzzAppendFrame checks the hand-written AppendReq decoder against the
// generated one: both accept or reject the same bytes, and agree on every
// field the handler uses.
func FuzzAppendFrame(f *testing.F) {
	for _, m := range []*streams.AppendReq{
		appendOptions("orders", &streams.AppendReq_Options_Revision{Revision: 42}),
		appendOptions("", &streams.AppendReq_Options_NoStream{NoStream: &shared.Empty{}}),
		appendOptions("s", &streams.AppendReq_Options_Any{Any: &shared.Empty{}}),
		appendOptions("s", &streams.AppendReq_Options_StreamExists{StreamExists: &shared.Empty{}}),
		appendEvent(proposed("T", "application/json")),
		appendEvent(&streams.AppendReq_ProposedMessage{
			Id:       &shared.UUID{Value: &shared.UUID_String_{String_: uuid.NewString()}},
			Metadata: map[string]string{"type": "x", "content-type": "y", "other": "z"},
		}),
		{},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(append([]byte{}, b...), b...)) // repeated fields merge
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want streams.AppendReq
		wantErr := proto.Unmarshal(b, &want)
		var got appendFrame
		gotErr := got.Unmarshal(b)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("generated decoder error %v, hand decoder error %v", wantErr, gotErr)
		}
		if wantErr != nil {
			return
		}
		compareFrame(t, &want, &got)
	})
}

func compareFrame(t *testing.T, want *streams.AppendReq, got *appendFrame) {
	t.Helper()
	switch c := want.GetContent().(type) {
	case *streams.AppendReq_Options_:
		if got.kind != frameOptions {
			t.Fatalf("kind = %d, want options", got.kind)
		}
		if !bytes.Equal(c.Options.GetStreamIdentifier().GetStreamName(), got.stream) {
			t.Errorf("stream = %q, want %q", got.stream, c.Options.GetStreamIdentifier().GetStreamName())
		}
		wantExp, wantErr := expectedFromAppend(c.Options)
		if (wantErr == nil) != got.hasExp || (got.hasExp && wantExp != got.expected) {
			t.Errorf("expected = %+v (set %v), want %+v (%v)", got.expected, got.hasExp, wantExp, wantErr)
		}
	case *streams.AppendReq_ProposedMessage_:
		if got.kind != frameProposed {
			t.Fatalf("kind = %d, want proposed", got.kind)
		}
		pm := c.ProposedMessage
		wantID, wantIDErr := parseProposedID(pm.GetId())
		gotID, gotIDErr := got.eventID()
		if (wantIDErr == nil) != (gotIDErr == nil) || wantID != gotID {
			t.Errorf("id = %v (%v), want %v (%v)", gotID, gotIDErr, wantID, wantIDErr)
		}
		typ, hasType := pm.GetMetadata()["type"]
		ct, hasCT := pm.GetMetadata()["content-type"]
		if typ != got.typ || hasType != got.hasType || ct != got.contentType || hasCT != got.hasCT {
			t.Errorf("type %q/%v content-type %q/%v, want %q/%v %q/%v", got.typ, got.hasType, got.contentType, got.hasCT, typ, hasType, ct, hasCT)
		}
		if !bytes.Equal(pm.GetData(), got.data) || !bytes.Equal(pm.GetCustomMetadata(), got.meta) {
			t.Errorf("data %q meta %q, want %q %q", got.data, got.meta, pm.GetData(), pm.GetCustomMetadata())
		}
	default:
		if got.kind != frameNone {
			t.Fatalf("kind = %d, want none", got.kind)
		}
	}
}
