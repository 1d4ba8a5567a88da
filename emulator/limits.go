package emulator

import (
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
)

// Size limits of KurrentDB 25.1: one event may take 16 MiB, one append
// 256 MiB (the chunk size).
const (
	DefaultMaxAppendEventSize = 16 << 20
	DefaultMaxAppendSize      = 256 << 20
)

// DefaultMaxAppendEvents is the number of events one append request may
// carry (Append, one BatchAppend write, or one AppendSession across its
// streams) when Options.MaxAppendEvents is zero. KurrentDB has no such cap;
// the emulator keeps every event of a request in memory until it commits,
// so it bounds them.
const DefaultMaxAppendEvents = 100_000

// appendEventOverhead is what each event costs an append beyond its data,
// metadata and type: the fixed part of its record (event id, stream
// revision, log positions, flags, timestamp), as the log accounts for it
// when it advances positions. It keeps events with an empty type and empty
// data from passing MaxAppendSize for nothing.
const appendEventOverhead = recordOverhead

// appendLimits are the limits applied to appends.
type appendLimits struct {
	maxEventSize  int // per event, as KurrentDB sizes it on disk
	maxAppendSize int // per append request, counting appendEventOverhead per event
	maxEvents     int // events per append request
}

// limitsFrom applies the defaults to the configured limits.
func limitsFrom(opts Options) appendLimits {
	l := appendLimits{maxEventSize: opts.MaxAppendEventSize, maxAppendSize: opts.MaxAppendSize, maxEvents: opts.MaxAppendEvents}
	if l.maxEventSize <= 0 {
		l.maxEventSize = DefaultMaxAppendEventSize
	}
	if l.maxAppendSize <= 0 {
		l.maxAppendSize = DefaultMaxAppendSize
	}
	if l.maxEvents <= 0 {
		l.maxEvents = DefaultMaxAppendEvents
	}
	return l
}

// eventSizeOnDisk is KurrentDB's size of an event for the per-event limit.
func eventSizeOnDisk(typ string, data, meta []byte) int {
	return len(data) + len(meta) + 2*len(typ)
}

// appendCost is what an event of the given size on disk counts toward the
// maximum append size.
func appendCost(sizeOnDisk int) int { return sizeOnDisk + appendEventOverhead }

// tooManyEventsMessage describes an append over the event cap.
func tooManyEventsMessage(stream string, l appendLimits) string {
	return fmt.Sprintf("Append to %q carries more than %d events, the emulator's maximum events per append.", stream, l.maxEvents)
}

// rpcTooManyEvents is the error for an Append with more events than the
// cap. It carries the trailers of a maximum-append-size error, so clients
// report it as an append that is too large.
func rpcTooManyEvents(stream string, l appendLimits) error {
	return newRPCError(codes.InvalidArgument, tooManyEventsMessage(stream, l),
		"exception", "maximum-append-size-exceeded",
		"maximum-append-size", strconv.Itoa(l.maxAppendSize),
		"maximum-append-events", strconv.Itoa(l.maxEvents))
}
