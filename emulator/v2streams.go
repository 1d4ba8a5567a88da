package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/structpb"

	v2errors "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/errors"
	v2streams "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
)

// v2StreamsServer implements the v2 StreamsService: AppendSession, the
// atomic multi-stream append. AppendRecords is not implemented (and not
// advertised).
type v2StreamsServer struct {
	v2streams.UnimplementedStreamsServiceServer
	store  *Store
	log    *zap.Logger
	limits appendLimits
}

// AppendSession implements StreamsService.AppendSession: each request names
// a stream, its expected revision and its records; after the client closes
// its side, all of them are written atomically. Errors are rich statuses
// whose details are the v2 error messages the clients decode.
func (s *v2StreamsServer) AppendSession(srv v2streams.StreamsService_AppendSessionServer) error {
	var (
		appends []StreamAppend
		raw     []int64 // expected revision as sent, per append
		seen    = map[string]bool{}
		total   int
		records int
		failure error
	)
	for {
		req, err := srv.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if failure != nil {
			continue // read to the end; the error goes out then
		}
		records += len(req.GetRecords())
		if records > s.limits.maxEvents {
			failure = v2Error(codes.Aborted, "APPEND_TRANSACTION_SIZE_EXCEEDED",
				fmt.Sprintf("The append session carries more than %d records, the emulator's maximum events per append.", s.limits.maxEvents), nil)
			appends = nil
			continue
		}
		a, sent, size, err := s.sessionAppend(req, seen)
		if err != nil {
			failure = err
			appends = nil
			continue
		}
		total += size
		if total > s.limits.maxAppendSize {
			failure = v2Error(codes.Aborted, "APPEND_TRANSACTION_SIZE_EXCEEDED",
				fmt.Sprintf("The append transaction size %d exceeds the maximum of %d.", total, s.limits.maxAppendSize),
				&v2errors.AppendTransactionSizeExceededErrorDetails{Size: clampInt32(total), MaxSize: clampInt32(s.limits.maxAppendSize)})
			appends = nil
			continue
		}
		appends = append(appends, a)
		raw = append(raw, sent)
	}
	if failure != nil {
		return failure
	}
	if len(appends) == 0 {
		return v2Error(codes.FailedPrecondition, "APPEND_SESSION_NO_REQUESTS",
			"The append session has no requests.", nil)
	}

	results, pos, err := s.store.AppendMulti(appends)
	if err != nil {
		return s.sessionStoreError(appends, raw, err)
	}
	resp := &v2streams.AppendSessionResponse{Position: int64(pos)}
	for i, r := range results {
		p := int64(r.Position)
		resp.Output = append(resp.Output, &v2streams.AppendResponse{
			Stream:         appends[i].Stream,
			StreamRevision: r.Revision,
			Position:       &p,
		})
	}
	return srv.SendAndClose(resp)
}

// sessionAppend decodes one AppendRequest of a session. It returns the
// append, the expected revision as sent and the request's size.
func (s *v2StreamsServer) sessionAppend(req *v2streams.AppendRequest, seen map[string]bool) (StreamAppend, int64, int, error) {
	stream := req.GetStream()
	if stream == "" {
		return StreamAppend{}, 0, 0, status.Error(codes.InvalidArgument, "AppendSession: a request has an empty stream name")
	}
	key := strings.ToLower(stream)
	if seen[key] {
		return StreamAppend{}, 0, 0, v2Error(codes.Aborted, "STREAM_ALREADY_IN_APPEND_SESSION",
			fmt.Sprintf("Stream %q is already in the append session.", stream),
			&v2errors.StreamAlreadyInAppendSessionErrorDetails{Stream: stream})
	}
	seen[key] = true

	sent := int64(-2)
	if req.ExpectedRevision != nil {
		sent = req.GetExpectedRevision()
	}
	var exp Expected
	switch {
	case sent >= 0:
		exp = Expected{Kind: ExpectRevision, Revision: uint64(sent)}
	case sent == -1:
		exp = Expected{Kind: ExpectNoStream}
	case sent == -2:
		exp = Expected{Kind: ExpectAny}
	case sent == -4:
		exp = Expected{Kind: ExpectStreamExists}
	default:
		return StreamAppend{}, 0, 0, status.Errorf(codes.InvalidArgument,
			"AppendSession: stream %q: expected_revision %d is not a revision, -1 (no stream), -2 (any) or -4 (exists)", stream, sent)
	}

	a := StreamAppend{Stream: stream, Expected: exp}
	size := 0
	for i, rec := range req.GetRecords() {
		ev, recSize, err := s.recordEvent(stream, i, rec)
		if err != nil {
			return StreamAppend{}, 0, 0, err
		}
		size += appendCost(recSize)
		a.Events = append(a.Events, ev)
	}
	return a, sent, size, nil
}

// recordEvent converts an AppendRecord to a stored event whose metadata is
// its properties as a JSON object.
func (s *v2StreamsServer) recordEvent(stream string, i int, rec *v2streams.AppendRecord) (ProposedEvent, int, error) {
	id := uuid.New()
	if rec.RecordId != nil {
		u, err := uuid.Parse(rec.GetRecordId())
		if err != nil {
			return ProposedEvent{}, 0, status.Errorf(codes.InvalidArgument,
				"AppendSession: stream %q record %d: record_id %q is not a UUID", stream, i, rec.GetRecordId())
		}
		id = u
	}
	schema := rec.GetSchema()
	if schema.GetName() == "" {
		return ProposedEvent{}, 0, status.Errorf(codes.InvalidArgument,
			"AppendSession: stream %q record %d: schema.name (the event type) is required", stream, i)
	}
	props := map[string]*structpb.Value{}
	for k, v := range rec.GetProperties() {
		props[k] = v
	}
	isJSON := schema.GetFormat() == v2streams.SchemaFormat_SCHEMA_FORMAT_JSON
	if !isJSON {
		props["$schema.format"] = structpb.NewStringValue(schemaFormatName(schema.GetFormat()))
	}
	if schema.Id != nil {
		props["$schema.id"] = structpb.NewStringValue(schema.GetId())
	}
	size := len(rec.GetData()) + proto.Size(&structpb.Struct{Fields: props}) + len(schema.GetName())
	if size > s.limits.maxEventSize {
		return ProposedEvent{}, 0, v2Error(codes.InvalidArgument, "APPEND_RECORD_SIZE_EXCEEDED",
			fmt.Sprintf("Record %s of stream %q has size %d, above the maximum of %d.", id, stream, size, s.limits.maxEventSize),
			&v2errors.AppendRecordSizeExceededErrorDetails{
				Stream: stream, RecordId: id.String(), Size: clampInt32(size), MaxSize: clampInt32(s.limits.maxEventSize),
			})
	}
	obj := make(map[string]any, len(props))
	for k, v := range props {
		obj[k] = v.AsInterface()
	}
	meta, err := json.Marshal(obj)
	if err != nil {
		return ProposedEvent{}, 0, status.Errorf(codes.InvalidArgument,
			"AppendSession: stream %q record %d: properties cannot be rendered as JSON: %v", stream, i, err)
	}
	data := rec.GetData()
	if data == nil {
		data = []byte{}
	}
	return ProposedEvent{
		ID: id, Type: schema.GetName(), IsJSON: isJSON, Data: data, Metadata: meta, PropertyMetadata: true,
	}, size, nil
}

// sessionStoreError maps a store error of an AppendSession to its rich status.
func (s *v2StreamsServer) sessionStoreError(appends []StreamAppend, raw []int64, err error) error {
	var (
		wev *WrongExpectedVersionError
		del *StreamDeletedError
	)
	switch {
	case errors.As(err, &wev):
		sent := int64(-2)
		for i, a := range appends {
			if a.Stream == wev.Stream {
				sent = raw[i]
			}
		}
		return v2Error(codes.FailedPrecondition, "STREAM_REVISION_CONFLICT",
			fmt.Sprintf("Append failed due to a revision conflict on stream %q: expected %d, actual %d.", wev.Stream, sent, wev.Actual),
			&v2errors.StreamRevisionConflictErrorDetails{Stream: wev.Stream, ExpectedRevision: sent, ActualRevision: wev.Actual})
	case errors.As(err, &del):
		return v2Error(codes.FailedPrecondition, "STREAM_TOMBSTONED",
			fmt.Sprintf("Stream %q is tombstoned.", del.Stream),
			&v2errors.StreamTombstonedErrorDetails{Stream: del.Stream})
	case errors.Is(err, ErrStoreClosed):
		return status.Error(codes.Unavailable, "Server Is Shutting Down")
	}
	var cor *CorruptedIdempotencyError
	if errors.As(err, &cor) {
		return rpcInvalidTransaction()
	}
	s.log.Error("append session failed", zap.Error(err))
	return status.Errorf(codes.Internal, "append session: %v", err)
}

// v2Error builds a rich status: an ErrorInfo naming the error, then the
// typed details the clients decode.
func v2Error(code codes.Code, reason, msg string, detail proto.Message) error {
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Reason: reason, Domain: "kurrentdb"}
	var err error
	if detail != nil {
		st, err = st.WithDetails(info, protoadapt.MessageV1Of(detail))
	} else {
		st, err = st.WithDetails(info)
	}
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// schemaFormatName is the name KurrentDB stores as $schema.format.
func schemaFormatName(f v2streams.SchemaFormat) string {
	switch f {
	case v2streams.SchemaFormat_SCHEMA_FORMAT_JSON:
		return "Json"
	case v2streams.SchemaFormat_SCHEMA_FORMAT_PROTOBUF:
		return "Protobuf"
	case v2streams.SchemaFormat_SCHEMA_FORMAT_AVRO:
		return "Avro"
	case v2streams.SchemaFormat_SCHEMA_FORMAT_BYTES:
		return "Bytes"
	}
	return "Unspecified"
}

func clampInt32(n int) int32 {
	if n > 1<<31-1 {
		return 1<<31 - 1
	}
	return int32(n)
}
