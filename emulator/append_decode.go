package emulator

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
)

// appendFrame is one Streams.Append request message (AppendReq), decoded
// by hand instead of through the reflective protobuf runtime: appends are
// the emulator's hot path, and this keeps only what the handler needs. It
// implements the legacy proto.Message interface with an Unmarshal method,
// which the protobuf runtime (and so gRPC's codec) calls to decode it. The
// decoding follows protobuf's rules exactly (last oneof wins, repeated
// sub-messages merge, unknown fields and mismatched wire types are skipped,
// strings must be UTF-8); a fuzz test checks it against the generated type.
type appendFrame struct {
	kind appendFrameKind

	// options
	stream   []byte
	expected Expected
	hasExp   bool

	// proposed_message
	id          uuid.UUID
	idKind      appendIDKind
	idText      string // the string form as sent, when idKind is idString
	typ         string
	hasType     bool
	contentType string
	hasCT       bool
	meta, data  []byte
}

type appendFrameKind uint8

const (
	frameNone appendFrameKind = iota
	frameOptions
	frameProposed
)

type appendIDKind uint8

const (
	idNone appendIDKind = iota
	idStructured
	idString
)

// Reset implements the legacy proto.Message interface.
func (f *appendFrame) Reset() { *f = appendFrame{} }

// String implements the legacy proto.Message interface.
func (f *appendFrame) String() string { return "AppendReq frame of kind " + strconv.Itoa(int(f.kind)) }

// ProtoMessage implements the legacy proto.Message interface.
func (*appendFrame) ProtoMessage() {}

var (
	errFrameUTF8  = errors.New("proto: string field contains invalid UTF-8")
	errFrameWire  = errors.New("proto: cannot parse invalid wire-format data")
	errFrameRange = errors.New("proto: field number out of range")
)

// frameField is one decoded field: for length-delimited fields value is the
// payload, for varints n is the number; other wire types carry nothing.
type frameField struct {
	num   protowire.Number
	typ   protowire.Type
	value []byte
	n     uint64
}

// nextField consumes one field of b.
func nextField(b []byte) (frameField, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return frameField{}, nil, errFrameWire
	}
	if num > protowire.MaxValidNumber || num < protowire.MinValidNumber {
		return frameField{}, nil, errFrameRange
	}
	b = b[n:]
	f := frameField{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		v, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return frameField{}, nil, errFrameWire
		}
		f.n, b = v, b[m:]
	case protowire.BytesType:
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return frameField{}, nil, errFrameWire
		}
		f.value, b = v, b[m:]
	default:
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return frameField{}, nil, errFrameWire
		}
		b = b[m:]
	}
	return f, b, nil
}

// eachField calls fn with each field of the message b in order, stopping at
// the first error.
func eachField(b []byte, fn func(frameField) error) error {
	for len(b) > 0 {
		fld, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		if err := fn(fld); err != nil {
			return err
		}
	}
	return nil
}

// Unmarshal decodes an AppendReq. Kept bytes are copied: gRPC reuses the
// buffer.
func (f *appendFrame) Unmarshal(b []byte) error {
	f.Reset()
	return eachField(b, func(fld frameField) error {
		if fld.typ != protowire.BytesType {
			return nil // unknown, or a known field with the wrong wire type
		}
		switch fld.num {
		case 1: // options
			if f.kind != frameOptions {
				f.clearProposed()
				f.kind = frameOptions
			}
			return f.mergeOptions(fld.value)
		case 2: // proposed_message
			if f.kind != frameProposed {
				f.clearOptions()
				f.kind = frameProposed
			}
			return f.mergeProposed(fld.value)
		}
		return nil
	})
}

func (f *appendFrame) clearOptions() {
	f.stream, f.expected, f.hasExp = nil, Expected{}, false
}

func (f *appendFrame) clearProposed() {
	f.id, f.idKind, f.idText = uuid.UUID{}, idNone, ""
	f.typ, f.hasType, f.contentType, f.hasCT = "", false, "", false
	f.meta, f.data = nil, nil
}

// mergeOptions merges an AppendReq.Options message.
func (f *appendFrame) mergeOptions(b []byte) error {
	return eachField(b, func(fld frameField) error {
		switch {
		case fld.num == 1 && fld.typ == protowire.BytesType: // stream_identifier
			return f.mergeStreamIdentifier(fld.value)
		case fld.num == 2 && fld.typ == protowire.VarintType: // revision
			f.expected, f.hasExp = Expected{Kind: ExpectRevision, Revision: fld.n}, true
		case fld.num >= 3 && fld.num <= 5 && fld.typ == protowire.BytesType: // no_stream, any, stream_exists
			if err := skipMessage(fld.value); err != nil {
				return err
			}
			f.expected, f.hasExp = Expected{Kind: expectedKindOfField[fld.num-3]}, true
		}
		return nil
	})
}

// expectedKindOfField maps AppendReq.Options fields 3, 4 and 5 (no_stream,
// any, stream_exists), less 3, to the expectation they set.
var expectedKindOfField = [3]ExpectedKind{ExpectNoStream, ExpectAny, ExpectStreamExists}

// mergeStreamIdentifier merges a StreamIdentifier message.
func (f *appendFrame) mergeStreamIdentifier(b []byte) error {
	if f.stream == nil {
		f.stream = []byte{}
	}
	return eachField(b, func(fld frameField) error {
		if fld.num == 3 && fld.typ == protowire.BytesType {
			f.stream = append([]byte{}, fld.value...)
		}
		return nil
	})
}

// mergeProposed merges an AppendReq.ProposedMessage message.
func (f *appendFrame) mergeProposed(b []byte) error {
	return eachField(b, func(fld frameField) error {
		if fld.typ != protowire.BytesType {
			return nil
		}
		switch fld.num {
		case 1: // id
			return f.mergeUUID(fld.value)
		case 2: // metadata map entry
			key, val, err := decodeMapEntry(fld.value)
			if err != nil {
				return err
			}
			switch key {
			case "type":
				f.typ, f.hasType = val, true
			case "content-type":
				f.contentType, f.hasCT = val, true
			}
		case 3: // custom_metadata
			f.meta = append([]byte{}, fld.value...)
		case 4: // data
			f.data = append([]byte{}, fld.value...)
		}
		return nil
	})
}

// mergeUUID merges a UUID message (oneof structured | string).
func (f *appendFrame) mergeUUID(b []byte) error {
	return eachField(b, func(fld frameField) error {
		if fld.typ != protowire.BytesType {
			return nil
		}
		switch fld.num {
		case 1: // structured
			if f.idKind != idStructured {
				f.id, f.idText = uuid.UUID{}, ""
				f.idKind = idStructured
			}
			return f.mergeStructured(fld.value)
		case 2: // string
			if !utf8.Valid(fld.value) {
				return errFrameUTF8
			}
			f.id, f.idKind, f.idText = uuid.UUID{}, idString, string(fld.value)
		}
		return nil
	})
}

// mergeStructured merges UUID.Structured into f.id.
func (f *appendFrame) mergeStructured(b []byte) error {
	return eachField(b, func(fld frameField) error {
		if fld.typ != protowire.VarintType || (fld.num != 1 && fld.num != 2) {
			return nil
		}
		half := f.id[:8]
		if fld.num == 2 {
			half = f.id[8:]
		}
		for i := range 8 {
			half[7-i] = byte(fld.n >> (8 * i))
		}
		return nil
	})
}

// decodeMapEntry decodes a map<string, string> entry.
func decodeMapEntry(b []byte) (key, val string, err error) {
	err = eachField(b, func(fld frameField) error {
		if fld.typ != protowire.BytesType || (fld.num != 1 && fld.num != 2) {
			return nil
		}
		if !utf8.Valid(fld.value) {
			return errFrameUTF8
		}
		if fld.num == 1 {
			key = string(fld.value)
		} else {
			val = string(fld.value)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return key, val, nil
}

// skipMessage checks that b is a well-formed message whose fields are all
// ignored (an Empty).
func skipMessage(b []byte) error {
	return eachField(b, func(frameField) error { return nil })
}

// eventID is the proposed event's id, as parseProposedID reads it.
func (f *appendFrame) eventID() (uuid.UUID, error) {
	switch f.idKind {
	case idStructured:
		return f.id, nil
	case idString:
		u, err := uuid.Parse(f.idText)
		if err != nil {
			return uuid.UUID{}, rpcInvalid("id %q is not a UUID: %v", f.idText, err)
		}
		return u, nil
	}
	return uuid.UUID{}, rpcInvalid("id is required")
}

// event converts a proposed_message frame to a stored event, with the same
// checks as proposedFromV1.
func (f *appendFrame) event() (ProposedEvent, error) {
	id, err := f.eventID()
	if err != nil {
		return ProposedEvent{}, err
	}
	if !f.hasType {
		return ProposedEvent{}, rpcMissingMetadata("type")
	}
	if !f.hasCT {
		return ProposedEvent{}, rpcMissingMetadata("content-type")
	}
	meta, data := f.meta, f.data
	if meta == nil {
		meta = []byte{}
	}
	if data == nil {
		data = []byte{}
	}
	return ProposedEvent{ID: id, Type: f.typ, IsJSON: f.contentType == contentJSONType, Data: data, Metadata: meta}, nil
}
