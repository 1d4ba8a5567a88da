package emulator

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/google/uuid"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// Append implements Streams.Append: an options message, then the proposed
// events, then one AppendResp. A wrong expected revision is an OK response;
// other failures are status errors with KurrentDB's trailers. The whole
// request stream is read before a semantic error is returned, so the client
// sees the error rather than a failed Send.
func (s *streamsServer) Append(srv streams.Streams_AppendServer) error {
	// Messages are decoded by hand into one reused frame (append_decode.go).
	frame := new(appendFrame)
	if err := srv.RecvMsg(frame); err != nil {
		if err == io.EOF {
			return rpcInvalid("Append: the request stream ended before its options message")
		}
		return err
	}
	if frame.kind != frameOptions {
		return drainFrames(srv, frame, rpcInvalid("Append: the first message must carry options"))
	}
	stream := string(frame.stream)
	exp := frame.expected
	switch {
	case !frame.hasExp:
		return drainFrames(srv, frame, rpcInvalid("Append: options.expected_stream_revision is not set"))
	case stream == "":
		return drainFrames(srv, frame, rpcInvalid("Append: options.stream_identifier.stream_name is empty"))
	}

	var (
		events  []ProposedEvent
		total   int
		failure error
	)
	for i := 0; ; i++ {
		if err := srv.RecvMsg(frame); err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
		if failure != nil {
			events = nil
			continue // keep reading to the end; the error goes out then
		}
		if frame.kind != frameProposed {
			failure = rpcInvalid("Append to %q: message %d must be a proposed_message", stream, i+1)
			continue
		}
		ev, err := frame.event()
		if err != nil {
			failure = annotate(err, fmt.Sprintf("Append to %q: event %d", stream, i))
			continue
		}
		if i >= s.limits.maxEvents {
			failure = rpcTooManyEvents(stream, s.limits)
			continue
		}
		size := eventSizeOnDisk(ev.Type, ev.Data, ev.Metadata)
		if size > s.limits.maxEventSize {
			failure = rpcEventTooLarge(ev.ID.String(), size, s.limits.maxEventSize)
			continue
		}
		total += appendCost(size)
		if total > s.limits.maxAppendSize {
			failure = rpcAppendTooLarge(s.limits.maxAppendSize)
			continue
		}
		events = append(events, ev)
	}
	if failure != nil {
		return failure
	}

	res, err := s.store.Append(StreamAppend{Stream: stream, Expected: exp, Events: events})
	var wev *WrongExpectedVersionError
	if errors.As(err, &wev) {
		return srv.SendAndClose(&streams.AppendResp{Result: &streams.AppendResp_WrongExpectedVersion_{
			WrongExpectedVersion: wrongExpectedVersionResp(exp, wev.Actual),
		}})
	}
	if err != nil {
		return storeWriteError(s.log, "Append", stream, exp, err)
	}
	return srv.SendAndClose(&streams.AppendResp{Result: &streams.AppendResp_Success_{Success: appendSuccess(res)}})
}

// drainFrames reads the rest of an Append request stream into frame and
// returns err.
func drainFrames(srv streams.Streams_AppendServer, frame *appendFrame, err error) error {
	for {
		if rerr := srv.RecvMsg(frame); rerr != nil {
			if rerr == io.EOF {
				return err
			}
			return rerr
		}
	}
}

// annotate prefixes the message of a status error with where it happened,
// keeping its code and trailers.
func annotate(err error, where string) error {
	var re *rpcError
	if errors.As(err, &re) {
		return &rpcError{st: status.New(re.st.Code(), where+": "+re.st.Message()), trailer: re.trailer}
	}
	if st, ok := status.FromError(err); ok {
		return status.Error(st.Code(), where+": "+st.Message())
	}
	return fmt.Errorf("%s: %w", where, err)
}

// appendSuccess renders a store result as AppendResp.Success.
func appendSuccess(res AppendResult) *streams.AppendResp_Success {
	out := &streams.AppendResp_Success{}
	if res.Revision < 0 {
		out.CurrentRevisionOption = &streams.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		out.CurrentRevisionOption = &streams.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.Revision)}
	}
	if res.Position == 0 {
		out.PositionOption = &streams.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		out.PositionOption = &streams.AppendResp_Success_Position{Position: &streams.AppendResp_Position{
			CommitPosition: res.Position, PreparePosition: res.Position,
		}}
	}
	return out
}

// wrongExpectedVersionResp fills both the current and the legacy (20.6.0)
// fields, as KurrentDB does.
func wrongExpectedVersionResp(exp Expected, actual int64) *streams.AppendResp_WrongExpectedVersion {
	w := &streams.AppendResp_WrongExpectedVersion{}
	if actual < 0 {
		w.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
		w.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(actual)}
		w.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(actual)}
	}
	switch exp.Kind {
	case ExpectAny:
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	case ExpectStreamExists:
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	case ExpectNoStream:
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: math.MaxUint64}
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: exp.Revision}
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.Revision}
	}
	return w
}

// expectedFromAppend decodes AppendReq.Options.expected_stream_revision.
func expectedFromAppend(o *streams.AppendReq_Options) (Expected, error) {
	switch v := o.GetExpectedStreamRevision().(type) {
	case *streams.AppendReq_Options_Revision:
		return Expected{Kind: ExpectRevision, Revision: v.Revision}, nil
	case *streams.AppendReq_Options_NoStream:
		return Expected{Kind: ExpectNoStream}, nil
	case *streams.AppendReq_Options_Any:
		return Expected{Kind: ExpectAny}, nil
	case *streams.AppendReq_Options_StreamExists:
		return Expected{Kind: ExpectStreamExists}, nil
	}
	return Expected{}, rpcInvalid("Append: options.expected_stream_revision is not set")
}

// expectedCode is the number KurrentDB uses for an expected revision in
// messages and trailers: -2 any, -1 no stream, -4 stream exists.
func expectedCode(e Expected) int64 {
	switch e.Kind {
	case ExpectAny:
		return -2
	case ExpectNoStream:
		return -1
	case ExpectStreamExists:
		return -4
	}
	return int64(e.Revision)
}

// proposedFromV1 decodes a v1 proposed message (Append and BatchAppend).
func proposedFromV1(id *shared.UUID, md map[string]string, meta, data []byte) (ProposedEvent, error) {
	evID, err := parseProposedID(id)
	if err != nil {
		return ProposedEvent{}, err
	}
	typ, ok := md["type"]
	if !ok {
		return ProposedEvent{}, rpcMissingMetadata("type")
	}
	ct, ok := md["content-type"]
	if !ok {
		return ProposedEvent{}, rpcMissingMetadata("content-type")
	}
	if meta == nil {
		meta = []byte{}
	}
	if data == nil {
		data = []byte{}
	}
	return ProposedEvent{ID: evID, Type: typ, IsJSON: ct == contentJSONType, Data: data, Metadata: meta}, nil
}

// parseProposedID decodes an event id sent in structured or string form.
func parseProposedID(id *shared.UUID) (uuid.UUID, error) {
	switch v := id.GetValue().(type) {
	case *shared.UUID_Structured_:
		var u uuid.UUID
		msb, lsb := uint64(v.Structured.GetMostSignificantBits()), uint64(v.Structured.GetLeastSignificantBits())
		for i := 0; i < 8; i++ {
			u[7-i] = byte(msb >> (8 * i))
			u[15-i] = byte(lsb >> (8 * i))
		}
		return u, nil
	case *shared.UUID_String_:
		u, err := uuid.Parse(v.String_)
		if err != nil {
			return uuid.UUID{}, rpcInvalid("id %q is not a UUID: %v", v.String_, err)
		}
		return u, nil
	}
	return uuid.UUID{}, rpcInvalid("id is required")
}

// contentJSONType is the content type that marks an event as JSON.
const contentJSONType = "application/json"
