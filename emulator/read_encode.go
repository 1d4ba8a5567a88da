package emulator

import (
	"encoding/binary"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Events are the hot path of every read and subscription, so they are
// encoded by hand, straight from the record into a buffer of their exact
// size, instead of filling ReadResp structs (whose metadata map protobuf-go
// marshals through reflection, allocating per entry). The result is sent as
// an encodedResp.

// encodedResp is a message already in protobuf wire format. It implements
// the legacy Marshal method, which protobuf-go (and so gRPC's proto codec)
// uses as the message's encoding. The codec may use the returned bytes
// without copying them after SendMsg has returned, so neither the message
// nor its bytes may be changed or reused once sent.
type encodedResp struct{ b []byte }

// Reset implements the legacy proto.Message interface.
func (m *encodedResp) Reset() { m.b = m.b[:0] }

// String implements the legacy proto.Message interface.
func (m *encodedResp) String() string {
	return "encoded message of " + strconv.Itoa(len(m.b)) + " bytes"
}

// ProtoMessage implements the legacy proto.Message interface.
func (*encodedResp) ProtoMessage() {}

// Marshal returns the encoded message.
func (m *encodedResp) Marshal() ([]byte, error) { return m.b, nil }

// Field numbers of streams.proto used by the encoder.
const (
	fReadRespEvent       = 1 // ReadResp.event
	fReadEventEvent      = 1 // ReadResp.ReadEvent.event
	fReadEventLink       = 2 // ReadResp.ReadEvent.link
	fReadEventCommit     = 3 // ReadResp.ReadEvent.commit_position
	fRecID               = 1
	fRecStreamIdentifier = 2
	fRecStreamRevision   = 3
	fRecPreparePosition  = 4
	fRecCommitPosition   = 5
	fRecMetadata         = 6
	fRecCustomMetadata   = 7
	fRecData             = 8
	fUUIDStructured      = 1
	fUUIDString          = 2
	fStructuredMost      = 1
	fStructuredLeast     = 2
	fStreamName          = 3 // StreamIdentifier.stream_name
	fMapKey              = 1
	fMapValue            = 2
)

func sizeField(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func sizeVarintField(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStringField(b []byte, num protowire.Number, v string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func sizeEntry(k, v string) int {
	return sizeField(fMapKey, len(k)) + sizeField(fMapValue, len(v))
}

func appendEntry(b []byte, k, v string) []byte {
	b = protowire.AppendTag(b, fRecMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeEntry(k, v)))
	b = appendStringField(b, fMapKey, k)
	return appendStringField(b, fMapValue, v)
}

func uuidHalves(r *record) (uint64, uint64) {
	return binary.BigEndian.Uint64(r.id[:8]), binary.BigEndian.Uint64(r.id[8:])
}

func contentType(r *record) string {
	if r.isJSON() {
		return contentJSON
	}
	return contentBinary
}

// idSize is the size of the UUID message of r.
func idSize(r *record, stringIDs bool) int {
	if stringIDs {
		return sizeField(fUUIDString, 36)
	}
	most, least := uuidHalves(r)
	return sizeField(fUUIDStructured, sizeVarintField(fStructuredMost, most)+sizeVarintField(fStructuredLeast, least))
}

// recordedSize is the size of the RecordedEvent message of r.
func recordedSize(r *record, stringIDs bool) int {
	n := sizeField(fRecID, idSize(r, stringIDs))
	n += sizeField(fRecStreamIdentifier, sizeField(fStreamName, len(r.stream.nameB)))
	n += sizeVarintField(fRecStreamRevision, uint64(r.number))
	n += 2 * sizeVarintField(fRecPreparePosition, r.pos)
	for _, e := range [...][2]string{{mdType, r.typ}, {mdCreated, r.createdStr}, {mdContentType, contentType(r)}} {
		n += sizeField(fRecMetadata, sizeEntry(e[0], e[1]))
	}
	if len(r.meta) > 0 {
		n += sizeField(fRecCustomMetadata, len(r.meta))
	}
	if len(r.data) > 0 {
		n += sizeField(fRecData, len(r.data))
	}
	return n
}

// appendRecorded appends field num holding the RecordedEvent of r.
func appendRecorded(b []byte, num protowire.Number, r *record, stringIDs bool) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(recordedSize(r, stringIDs)))

	b = protowire.AppendTag(b, fRecID, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(idSize(r, stringIDs)))
	if stringIDs {
		b = appendStringField(b, fUUIDString, r.id.String())
	} else {
		most, least := uuidHalves(r)
		b = protowire.AppendTag(b, fUUIDStructured, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeVarintField(fStructuredMost, most)+sizeVarintField(fStructuredLeast, least)))
		b = appendVarintField(b, fStructuredMost, most)
		b = appendVarintField(b, fStructuredLeast, least)
	}
	b = protowire.AppendTag(b, fRecStreamIdentifier, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeField(fStreamName, len(r.stream.nameB))))
	b = appendBytesField(b, fStreamName, r.stream.nameB)
	b = appendVarintField(b, fRecStreamRevision, uint64(r.number))
	b = appendVarintField(b, fRecPreparePosition, r.pos)
	b = appendVarintField(b, fRecCommitPosition, r.pos)
	b = appendEntry(b, mdType, r.typ)
	b = appendEntry(b, mdCreated, r.createdStr)
	b = appendEntry(b, mdContentType, contentType(r))
	if len(r.meta) > 0 {
		b = appendBytesField(b, fRecCustomMetadata, r.meta)
	}
	if len(r.data) > 0 {
		b = appendBytesField(b, fRecData, r.data)
	}
	return b
}

// readEventSize is the size of the ReadEvent message of a page item.
func readEventSize(it pageItem, stringIDs bool) int {
	n := protowire.SizeTag(fReadEventCommit) + protowire.SizeVarint(it.orig().pos) // oneof: always present
	if it.ev != nil {
		n += sizeField(fReadEventEvent, recordedSize(it.ev, stringIDs))
	}
	if it.link != nil {
		n += sizeField(fReadEventLink, recordedSize(it.link, stringIDs))
	}
	return n
}

// eventRespSize is the size of the ReadResp{event} of a page item.
func eventRespSize(it pageItem, stringIDs bool) int {
	return sizeField(fReadRespEvent, readEventSize(it, stringIDs))
}

// appendEventResp appends a whole ReadResp{event} for a page item.
func appendEventResp(b []byte, it pageItem, stringIDs bool) []byte {
	orig := it.orig()
	n := readEventSize(it, stringIDs)
	b = protowire.AppendTag(b, fReadRespEvent, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if it.ev != nil {
		b = appendRecorded(b, fReadEventEvent, it.ev, stringIDs)
	}
	if it.link != nil {
		b = appendRecorded(b, fReadEventLink, it.link, stringIDs)
	}
	b = protowire.AppendTag(b, fReadEventCommit, protowire.VarintType)
	return protowire.AppendVarint(b, orig.pos)
}
