package emulator

import (
	"context"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// Delete implements Streams.Delete, a soft delete: the stream reads as
// missing until it is written again. The answer is the position of the
// $metadata record that deletes it.
func (s *streamsServer) Delete(_ context.Context, req *streams.DeleteReq) (*streams.DeleteResp, error) {
	o := req.GetOptions()
	if o == nil {
		return nil, rpcInvalid("Delete: options are required")
	}
	stream := string(o.GetStreamIdentifier().GetStreamName())
	if stream == "" {
		return nil, rpcInvalid("Delete: options.stream_identifier.stream_name is empty")
	}
	var exp Expected
	switch v := o.GetExpectedStreamRevision().(type) {
	case *streams.DeleteReq_Options_Revision:
		exp = Expected{Kind: ExpectRevision, Revision: v.Revision}
	case *streams.DeleteReq_Options_NoStream:
		exp = Expected{Kind: ExpectNoStream}
	case *streams.DeleteReq_Options_Any:
		exp = Expected{Kind: ExpectAny}
	case *streams.DeleteReq_Options_StreamExists:
		exp = Expected{Kind: ExpectStreamExists}
	default:
		return nil, rpcInvalid("Delete: options.expected_stream_revision is not set")
	}
	pos, err := s.store.Delete(stream, exp)
	if err != nil {
		return nil, storeWriteError(s.log, "Delete", stream, exp, err)
	}
	return &streams.DeleteResp{PositionOption: &streams.DeleteResp_Position_{
		Position: &streams.DeleteResp_Position{CommitPosition: pos, PreparePosition: pos},
	}}, nil
}

// Tombstone implements Streams.Tombstone, a permanent delete: every later
// read, write and subscription of the stream fails with stream-deleted.
func (s *streamsServer) Tombstone(_ context.Context, req *streams.TombstoneReq) (*streams.TombstoneResp, error) {
	o := req.GetOptions()
	if o == nil {
		return nil, rpcInvalid("Tombstone: options are required")
	}
	stream := string(o.GetStreamIdentifier().GetStreamName())
	if stream == "" {
		return nil, rpcInvalid("Tombstone: options.stream_identifier.stream_name is empty")
	}
	var exp Expected
	switch v := o.GetExpectedStreamRevision().(type) {
	case *streams.TombstoneReq_Options_Revision:
		exp = Expected{Kind: ExpectRevision, Revision: v.Revision}
	case *streams.TombstoneReq_Options_NoStream:
		exp = Expected{Kind: ExpectNoStream}
	case *streams.TombstoneReq_Options_Any:
		exp = Expected{Kind: ExpectAny}
	case *streams.TombstoneReq_Options_StreamExists:
		exp = Expected{Kind: ExpectStreamExists}
	default:
		return nil, rpcInvalid("Tombstone: options.expected_stream_revision is not set")
	}
	pos, err := s.store.Tombstone(stream, exp)
	if err != nil {
		return nil, storeWriteError(s.log, "Tombstone", stream, exp, err)
	}
	return &streams.TombstoneResp{PositionOption: &streams.TombstoneResp_Position_{
		Position: &streams.TombstoneResp_Position{CommitPosition: pos, PreparePosition: pos},
	}}, nil
}
