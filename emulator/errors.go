package emulator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rpcError is a gRPC status error that carries trailers, as KurrentDB sends
// them with most errors ("exception", "stream-name", …). The trailer
// interceptors copy the trailers onto the call, so handlers just return it.
type rpcError struct {
	st      *status.Status
	trailer metadata.MD
}

func (e *rpcError) Error() string { return e.st.Err().Error() }

// GRPCStatus lets grpc-go and status.FromError see the status.
func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// newRPCError builds a status error with trailer key/value pairs. Values
// are made safe for HTTP/2 headers with trailerValue.
func newRPCError(code codes.Code, msg string, kv ...string) *rpcError {
	for i := 1; i < len(kv); i += 2 {
		kv[i] = trailerValue(kv[i])
	}
	return &rpcError{st: status.New(code, msg), trailer: metadata.Pairs(kv...)}
}

// trailerValue percent-encodes the bytes of v that a gRPC header value
// cannot carry (anything but printable ASCII), so a stream name with such
// bytes still yields a well-formed error instead of a failed call.
func trailerValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// rpcStreamDeleted is the error for a tombstoned stream, or a soft-deleted
// one written to with StreamExists. The client requires the stream-name
// trailer.
func rpcStreamDeleted(stream string) error {
	return newRPCError(codes.FailedPrecondition, fmt.Sprintf("Event stream '%s' is deleted.", stream),
		"exception", "stream-deleted", "stream-name", stream)
}

// rpcWrongExpectedVersion is the error Delete and Tombstone return for a
// failed expected-revision check (Append answers with an OK response).
func rpcWrongExpectedVersion(op, stream string, expected int64, actual *int64) error {
	act := ""
	if actual != nil {
		act = strconv.FormatInt(*actual, 10)
	}
	return newRPCError(codes.FailedPrecondition,
		fmt.Sprintf("%s failed due to WrongExpectedVersion. Stream: %s, Expected version: %d, Actual version: %s",
			op, stream, expected, act),
		"exception", "wrong-expected-version",
		"stream-name", stream,
		"expected-version", strconv.FormatInt(expected, 10),
		"actual-version", act)
}

// rpcMissingMetadata is the error for a proposed event without the type or
// content-type metadata entry.
func rpcMissingMetadata(property string) error {
	return newRPCError(codes.InvalidArgument, fmt.Sprintf("Required Metadata Property '%s' is missing", property),
		"exception", "missing-required-metadata-property",
		"required-metadata-properties", "type,content-type")
}

// rpcEventTooLarge is the error for an event above the maximum event size.
func rpcEventTooLarge(eventID string, size, maxSize int) error {
	return newRPCError(codes.InvalidArgument,
		fmt.Sprintf("Event with Id: %s, Size: %d, exceeds Maximum Append Event Size of %d.", eventID, size, maxSize),
		"exception", "maximum-append-event-size-exceeded",
		"maximum-append-event-size", strconv.Itoa(maxSize),
		"event-id", eventID,
		"proposed-append-event-size", strconv.Itoa(size))
}

// rpcAppendTooLarge is the error for an append above the maximum append size.
func rpcAppendTooLarge(maxSize int) error {
	return newRPCError(codes.InvalidArgument, fmt.Sprintf("Maximum Append Size of %d Exceeded.", maxSize),
		"exception", "maximum-append-size-exceeded",
		"maximum-append-size", strconv.Itoa(maxSize))
}

// rpcInvalid is a plain InvalidArgument error for a malformed request.
func rpcInvalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// trailerOf returns the trailers an error carries, if any.
func trailerOf(err error) metadata.MD {
	var re *rpcError
	if errors.As(err, &re) {
		return re.trailer
	}
	return nil
}

// trailerUnary sets the trailers of an *rpcError returned by a unary handler.
func trailerUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if md := trailerOf(err); md != nil {
		_ = grpc.SetTrailer(ctx, md)
	}
	return resp, err
}

// trailerStream sets the trailers of an *rpcError returned by a streaming
// handler.
func trailerStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	if md := trailerOf(err); md != nil {
		ss.SetTrailer(md)
	}
	return err
}

// rpcInvalidTransaction is the error for an append that repeats earlier
// event ids only in part.
func rpcInvalidTransaction() error {
	return newRPCError(codes.InvalidArgument, "Invalid Transaction", "exception", "invalid-transaction")
}

// storeWriteError maps an error of a store write to the status KurrentDB
// answers with. op names the operation in wrong-expected-version messages
// ("Delete", "Tombstone").
func storeWriteError(log *zap.Logger, op, stream string, exp Expected, err error) error {
	var (
		wev *WrongExpectedVersionError
		del *StreamDeletedError
		cor *CorruptedIdempotencyError
	)
	switch {
	case errors.As(err, &wev):
		actual := wev.Actual
		return rpcWrongExpectedVersion(op, stream, expectedCode(exp), &actual)
	case errors.As(err, &del):
		return rpcStreamDeleted(del.Stream)
	case errors.As(err, &cor):
		return rpcInvalidTransaction()
	case errors.Is(err, ErrStoreClosed):
		return status.Error(codes.Unavailable, "Server Is Shutting Down")
	}
	log.Error("store write failed", zap.String("op", op), zap.String("stream", stream), zap.Error(err))
	return status.Errorf(codes.Internal, "%s %q: %v", op, stream, err)
}
