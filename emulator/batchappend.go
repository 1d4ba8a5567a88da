package emulator

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// pendingBatch is a BatchAppend write whose final request has not arrived.
type pendingBatch struct {
	stream   string
	exp      Expected
	deadline time.Time // zero: none
	events   []ProposedEvent
	size     int
}

// maxPendingBatches bounds the writes one BatchAppend call may have open
// (options sent, final request not yet), so a client cannot grow the
// server's memory without limit; their events count against the maximum
// append size together.
const maxPendingBatches = 1024

// batchSession is the state of one BatchAppend call.
type batchSession struct {
	pending map[uuid.UUID]*pendingBatch
	bytes   int // sum of the pending writes' sizes
	events  int // sum of the pending writes' event counts
}

// remove forgets a pending write.
func (bs *batchSession) remove(corr uuid.UUID) {
	if b := bs.pending[corr]; b != nil {
		bs.bytes -= b.size
		bs.events -= len(b.events)
		delete(bs.pending, corr)
	}
}

// BatchAppend implements Streams.BatchAppend, the bidirectional append the
// Python and .NET clients use. Requests sharing a correlation id build one
// write: the first carries options, any may carry events, the one with
// is_final commits it. Each committed (or failed) write gets one response
// with the correlation id; failures are google.rpc.Status values with
// KurrentDB's detail messages, and the call itself stays OK.
func (s *streamsServer) BatchAppend(srv streams.Streams_BatchAppendServer) error {
	bs := &batchSession{pending: map[uuid.UUID]*pendingBatch{}}
	p := principalFrom(srv.Context())
	for {
		req, err := srv.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if resp := s.batchStep(bs, p, req); resp != nil {
			if err := srv.Send(resp); err != nil {
				return err
			}
		}
	}
}

// batchStep handles one BatchAppendReq and returns the response to send, if
// any.
func (s *streamsServer) batchStep(bs *batchSession, p *principal, req *streams.BatchAppendReq) *streams.BatchAppendResp {
	fail := func(streamID *shared.StreamIdentifier, st *rpcstatus.Status) *streams.BatchAppendResp {
		return &streams.BatchAppendResp{
			CorrelationId:    req.GetCorrelationId(),
			StreamIdentifier: streamID,
			Result:           &streams.BatchAppendResp_Error{Error: st},
		}
	}
	corr, err := parseProposedID(req.GetCorrelationId())
	if err != nil {
		return fail(req.GetOptions().GetStreamIdentifier(), batchBadRequest("correlation_id: "+status.Convert(err).Message()))
	}

	if o := req.GetOptions(); o != nil {
		write, st := batchWrite(p, o)
		if st != nil {
			return fail(o.GetStreamIdentifier(), st)
		}
		if bs.pending[corr] == nil {
			if len(bs.pending) >= maxPendingBatches {
				return fail(o.GetStreamIdentifier(), batchBadRequest(fmt.Sprintf(
					"too many unfinished writes on this call (%d); send is_final for some first", len(bs.pending))))
			}
			bs.pending[corr] = write
		}
	}

	b := bs.pending[corr]
	if b == nil {
		// No options for this correlation id (never sent, or the write already
		// failed): KurrentDB ignores the request.
		s.log.Debug("batch append request without a pending write ignored", zap.Stringer("correlation_id", corr))
		return nil
	}
	streamID := &shared.StreamIdentifier{StreamName: []byte(b.stream)}
	if n := len(req.GetProposedMessages()); len(b.events)+n > s.limits.maxEvents || bs.events+n > s.limits.maxEvents {
		bs.remove(corr)
		return fail(streamID, batchTooManyEvents(b.stream, s.limits))
	}
	for i, pm := range req.GetProposedMessages() {
		ev, err := proposedFromV1(pm.GetId(), pm.GetMetadata(), pm.GetCustomMetadata(), pm.GetData())
		if err != nil {
			bs.remove(corr)
			return fail(streamID, batchBadRequest(fmt.Sprintf("event %d: %s", len(b.events)+i, status.Convert(err).Message())))
		}
		size := eventSizeOnDisk(ev.Type, ev.Data, ev.Metadata)
		if size > s.limits.maxEventSize {
			bs.remove(corr)
			return fail(streamID, batchEventTooLarge(ev.ID.String(), size, s.limits.maxEventSize))
		}
		b.size += appendCost(size)
		bs.bytes += appendCost(size)
		bs.events++
		b.events = append(b.events, ev)
	}
	if b.size > s.limits.maxAppendSize || bs.bytes > s.limits.maxAppendSize {
		bs.remove(corr)
		return fail(streamID, batchAppendTooLarge(s.limits.maxAppendSize))
	}
	if !req.GetIsFinal() {
		return nil
	}
	bs.remove(corr)
	if !b.deadline.IsZero() && time.Now().After(b.deadline) {
		return fail(streamID, batchTimeout())
	}

	res, err := s.store.Append(StreamAppend{Stream: b.stream, Expected: b.exp, Events: b.events})
	if err != nil {
		return fail(streamID, s.batchStoreError(b, err))
	}
	return &streams.BatchAppendResp{
		CorrelationId:    req.GetCorrelationId(),
		StreamIdentifier: streamID,
		Result:           &streams.BatchAppendResp_Success_{Success: batchSuccess(res)},
	}
}

// batchWrite checks the options of a BatchAppendReq sent by p (nil when the
// call is not authenticated) and returns the write they start; a non-nil
// status is the error to answer with instead.
func batchWrite(p *principal, o *streams.BatchAppendReq_Options) (*pendingBatch, *rpcstatus.Status) {
	name := o.GetStreamIdentifier().GetStreamName()
	if len(name) == 0 {
		return nil, batchBadRequest("Required field StreamIdentifier not set.")
	}
	if p == nil || (!p.admin && isSystemStream(name)) {
		return nil, batchAccessDenied()
	}
	var exp Expected
	switch v := o.GetExpectedStreamPosition().(type) {
	case *streams.BatchAppendReq_Options_StreamPosition:
		exp = Expected{Kind: ExpectRevision, Revision: v.StreamPosition}
	case *streams.BatchAppendReq_Options_NoStream:
		exp = Expected{Kind: ExpectNoStream}
	case *streams.BatchAppendReq_Options_Any:
		exp = Expected{Kind: ExpectAny}
	case *streams.BatchAppendReq_Options_StreamExists:
		exp = Expected{Kind: ExpectStreamExists}
	default:
		return nil, batchBadRequest("options.expected_stream_position is not set")
	}
	var deadline time.Time
	switch v := o.GetDeadlineOption().(type) {
	case *streams.BatchAppendReq_Options_Deadline:
		deadline = time.Now().Add(v.Deadline.AsDuration())
	case *streams.BatchAppendReq_Options_Deadline_21_10_0:
		deadline = v.Deadline_21_10_0.AsTime()
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return nil, batchTimeout()
	}
	return &pendingBatch{stream: string(name), exp: exp, deadline: deadline}, nil
}

// batchSuccess is the success result of an append that res describes.
func batchSuccess(res AppendResult) *streams.BatchAppendResp_Success {
	ok := &streams.BatchAppendResp_Success{}
	if res.Revision < 0 {
		ok.CurrentRevisionOption = &streams.BatchAppendResp_Success_NoStream{NoStream: &emptypb.Empty{}}
	} else {
		ok.CurrentRevisionOption = &streams.BatchAppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.Revision)}
	}
	if res.Position == 0 {
		ok.PositionOption = &streams.BatchAppendResp_Success_NoPosition{NoPosition: &emptypb.Empty{}}
	} else {
		ok.PositionOption = &streams.BatchAppendResp_Success_Position{Position: &shared.AllStreamPosition{
			CommitPosition: res.Position, PreparePosition: res.Position,
		}}
	}
	return ok
}

// batchStoreError renders a store error as a BatchAppend status.
func (s *streamsServer) batchStoreError(b *pendingBatch, err error) *rpcstatus.Status {
	var (
		wev *WrongExpectedVersionError
		del *StreamDeletedError
		cor *CorruptedIdempotencyError
	)
	switch {
	case errors.As(err, &wev):
		d := &shared.WrongExpectedVersion{}
		if wev.Actual < 0 {
			d.CurrentStreamRevisionOption = &shared.WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &emptypb.Empty{}}
		} else {
			d.CurrentStreamRevisionOption = &shared.WrongExpectedVersion_CurrentStreamRevision{CurrentStreamRevision: uint64(wev.Actual)}
		}
		switch b.exp.Kind {
		case ExpectAny:
			d.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedAny{ExpectedAny: &emptypb.Empty{}}
		case ExpectNoStream:
			d.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &emptypb.Empty{}}
		case ExpectStreamExists:
			d.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &emptypb.Empty{}}
		default:
			d.ExpectedStreamPositionOption = &shared.WrongExpectedVersion_ExpectedStreamPosition{ExpectedStreamPosition: b.exp.Revision}
		}
		return batchStatus(codes.AlreadyExists, "WrongExpectedVersion", d)
	case errors.As(err, &del):
		return batchStatus(codes.NotFound, "StreamDeleted", &shared.StreamDeleted{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(b.stream)},
		})
	case errors.As(err, &cor):
		return batchStatus(codes.FailedPrecondition, "InvalidTransaction", &shared.InvalidTransaction{})
	}
	s.log.Error("batch append failed", zap.String("stream", b.stream), zap.Error(err))
	return batchStatus(codes.Unknown, "Unknown", &shared.Unknown{})
}

// batchStatus builds a google.rpc.Status with one packed detail message, as
// KurrentDB's BatchAppend reports errors.
func batchStatus(code codes.Code, msg string, detail proto.Message) *rpcstatus.Status {
	st := &rpcstatus.Status{Code: int32(code), Message: msg}
	if a, err := anypb.New(detail); err == nil {
		st.Details = []*anypb.Any{a}
	}
	return st
}

func batchBadRequest(msg string) *rpcstatus.Status {
	return batchStatus(codes.InvalidArgument, "BadRequest", &shared.BadRequest{Message: msg})
}

func batchAccessDenied() *rpcstatus.Status {
	return batchStatus(codes.PermissionDenied, "AccessDenied", &shared.AccessDenied{})
}

func batchTimeout() *rpcstatus.Status {
	return batchStatus(codes.DeadlineExceeded, "Timeout", &shared.Timeout{})
}

func batchAppendTooLarge(maxSize int) *rpcstatus.Status {
	return batchStatus(codes.InvalidArgument, "MaximumAppendSizeExceeded",
		&shared.MaximumAppendSizeExceeded{MaxAppendSize: uint32(maxSize)})
}

// batchTooManyEvents reports a write with more events than the emulator's
// cap, with the detail of an append that is too large.
func batchTooManyEvents(stream string, l appendLimits) *rpcstatus.Status {
	st := batchAppendTooLarge(l.maxAppendSize)
	st.Message = tooManyEventsMessage(stream, l)
	return st
}

// batchEventTooLarge reports an event above the size limit. The client
// module has no generated type for event_store.client.MaximumAppendEventSizeExceeded,
// so its three fields are encoded by hand.
func batchEventTooLarge(eventID string, size, maxSize int) *rpcstatus.Status {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, eventID)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(uint32(size)))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(uint32(maxSize)))
	return &rpcstatus.Status{
		Code:    int32(codes.InvalidArgument),
		Message: "MaximumAppendEventSizeExceeded",
		Details: []*anypb.Any{{
			TypeUrl: "type.googleapis.com/event_store.client.MaximumAppendEventSizeExceeded",
			Value:   b,
		}},
	}
}
