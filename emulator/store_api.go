package emulator

// The types of the store's write API: expected revisions, proposed events, append
// results and the errors a write can fail with.

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
)

// ExpectedKind is the kind of an optimistic-concurrency check.
type ExpectedKind int

// Expected-revision kinds, as the KurrentDB protocol defines them.
const (
	// ExpectAny passes unless the stream is tombstoned.
	ExpectAny ExpectedKind = iota
	// ExpectNoStream passes if the stream has no events (or is soft-deleted).
	ExpectNoStream
	// ExpectStreamExists passes if the stream has events or metadata.
	ExpectStreamExists
	// ExpectRevision passes if the stream's last event number is Revision.
	ExpectRevision
)

// Expected is an optimistic-concurrency check on a stream.
type Expected struct {
	Kind     ExpectedKind
	Revision uint64 // for ExpectRevision
}

// String renders e as the protocol's expected-version number (-2 any,
// -1 no stream, -4 stream exists, or the revision).
func (e Expected) String() string {
	switch e.Kind {
	case ExpectAny:
		return "-2"
	case ExpectNoStream:
		return "-1"
	case ExpectStreamExists:
		return "-4"
	default:
		return strconv.FormatUint(e.Revision, 10)
	}
}

// ProposedEvent is one event of an append.
type ProposedEvent struct {
	ID     uuid.UUID
	Type   string
	IsJSON bool
	Data   []byte
	// Metadata is the user metadata, stored as written.
	Metadata []byte
	// PropertyMetadata says Metadata holds v2 AppendSession properties (a JSON
	// object); reads then return it with $schema.name (and $schema.format for
	// JSON records) added, as a real server synthesizes it.
	PropertyMetadata bool
}

// StreamAppend is one stream's part of a write.
type StreamAppend struct {
	Stream   string
	Expected Expected
	Events   []ProposedEvent
}

// AppendResult is the outcome of one stream's append.
type AppendResult struct {
	// Revision is the stream's last event number after the append; -1 when it
	// has none.
	Revision int64
	// Position is the log position of the last record written (or of the
	// original on an idempotent replay); 0 when none.
	Position uint64
}

// WrongExpectedVersionError reports a failed optimistic-concurrency check.
type WrongExpectedVersionError struct {
	Stream   string
	Expected Expected
	Actual   int64 // last event number; -1 = no stream
}

// Error describes the failed check.
func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("wrong expected version on stream %q: expected %s, actual %d", e.Stream, e.Expected, e.Actual)
}

// StreamDeletedError reports a write to a tombstoned stream (or to a
// soft-deleted one with ExpectStreamExists).
type StreamDeletedError struct{ Stream string }

// Error is the message a real server sends for a deleted stream.
func (e *StreamDeletedError) Error() string {
	return fmt.Sprintf("Event stream '%s' is deleted.", e.Stream)
}

// CorruptedIdempotencyError reports an append whose event ids match the
// stream's events only in part: the first ids were written before but the
// rest differ. A real server answers it as an invalid transaction
// (InvalidArgument "Invalid Transaction", trailer exception=invalid-transaction).
type CorruptedIdempotencyError struct{ Stream string }

// Error describes the partial repeat.
func (e *CorruptedIdempotencyError) Error() string {
	return fmt.Sprintf("append to stream %q partially repeats earlier event ids (corrupted idempotency)", e.Stream)
}

// ErrStoreClosed is returned by writes to a closed store.
var ErrStoreClosed = errors.New("emulator: store is closed")
