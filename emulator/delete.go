package emulator

import (
	"context"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// Delete implements Streams.Delete, a soft delete: the stream reads as
// missing until it is written again. The answer is the position of the
// $metadata record that deletes it.
func (s *streamsServer) Delete(_ context.Context, req *streams.DeleteReq) (*streams.DeleteResp, error) {
	o := req.GetOptions()
	var exp *Expected // nil when the request sets none
	switch v := o.GetExpectedStreamRevision().(type) {
	case *streams.DeleteReq_Options_Revision:
		exp = &Expected{Kind: ExpectRevision, Revision: v.Revision}
	case *streams.DeleteReq_Options_NoStream:
		exp = &Expected{Kind: ExpectNoStream}
	case *streams.DeleteReq_Options_Any:
		exp = &Expected{Kind: ExpectAny}
	case *streams.DeleteReq_Options_StreamExists:
		exp = &Expected{Kind: ExpectStreamExists}
	}
	pos, err := s.deleteStream("Delete", o != nil, o.GetStreamIdentifier(), exp, s.store.Delete)
	if err != nil {
		return nil, err
	}
	return &streams.DeleteResp{PositionOption: &streams.DeleteResp_Position_{
		Position: &streams.DeleteResp_Position{CommitPosition: pos, PreparePosition: pos},
	}}, nil
}

// Tombstone implements Streams.Tombstone, a permanent delete: every later
// read, write and subscription of the stream fails with stream-deleted.
func (s *streamsServer) Tombstone(_ context.Context, req *streams.TombstoneReq) (*streams.TombstoneResp, error) {
	o := req.GetOptions()
	var exp *Expected // nil when the request sets none
	switch v := o.GetExpectedStreamRevision().(type) {
	case *streams.TombstoneReq_Options_Revision:
		exp = &Expected{Kind: ExpectRevision, Revision: v.Revision}
	case *streams.TombstoneReq_Options_NoStream:
		exp = &Expected{Kind: ExpectNoStream}
	case *streams.TombstoneReq_Options_Any:
		exp = &Expected{Kind: ExpectAny}
	case *streams.TombstoneReq_Options_StreamExists:
		exp = &Expected{Kind: ExpectStreamExists}
	}
	pos, err := s.deleteStream("Tombstone", o != nil, o.GetStreamIdentifier(), exp, s.store.Tombstone)
	if err != nil {
		return nil, err
	}
	return &streams.TombstoneResp{PositionOption: &streams.TombstoneResp_Position_{
		Position: &streams.TombstoneResp_Position{CommitPosition: pos, PreparePosition: pos},
	}}, nil
}

// deleteStream checks the parts Delete and Tombstone requests share (op names
// the call in errors; exp is nil when the request sets no expected revision),
// runs del and maps its error to the status KurrentDB answers with.
func (s *streamsServer) deleteStream(op string, hasOptions bool, id *shared.StreamIdentifier, exp *Expected,
	del func(stream string, exp Expected) (uint64, error)) (uint64, error) {
	if !hasOptions {
		return 0, rpcInvalid("%s: options are required", op)
	}
	stream := string(id.GetStreamName())
	if stream == "" {
		return 0, rpcInvalid("%s: options.stream_identifier.stream_name is empty", op)
	}
	if exp == nil {
		return 0, rpcInvalid("%s: options.expected_stream_revision is not set", op)
	}
	pos, err := del(stream, *exp)
	if err != nil {
		return 0, storeWriteError(s.log, op, stream, *exp, err)
	}
	return pos, nil
}
