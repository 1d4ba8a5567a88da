// The batch's events as bound arrays: one PostgreSQL array per column of Params, encoded in
// PostgreSQL's binary format straight from the events into one buffer, which is reused from
// batch to batch. Data and metadata travel as their bytes (text), checked to be JSON first.

package declarative

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Type OIDs of the arrays and of their elements.
const (
	oidText             = 25
	oidInt8             = 20
	oidTimestamptz      = 1184
	oidTextArray        = 1009
	oidInt8Array        = 1016
	oidTimestamptzArray = 1185
)

// arrayOID returns the OIDs of the array and element types a column of type typ is bound as
// (jsonb travels as text and is cast by the load statement).
func arrayOID(typ string) (array, elem uint32) {
	switch typ {
	case "bigint":
		return oidInt8Array, oidInt8
	case "timestamptz":
		return oidTimestamptzArray, oidTimestamptz
	}
	return oidTextArray, oidText
}

// microsecondsToY2K is the Unix time of 2000-01-01 UTC in microseconds: PostgreSQL counts
// timestamps from there.
const microsecondsToY2K = 946_684_800 * 1_000_000

// eventArrays is the encoded arrays of one batch: values[k] is the array of the k-th parameter.
type eventArrays struct {
	buf    []byte
	ends   []int
	values [][]byte
}

// arraysPool holds eventArrays between batches, so a projection's buffer is reused.
var arraysPool = sync.Pool{New: func() any { return new(eventArrays) }}

// checkBatchEvents reports the first event whose positions do not fit a bigint or whose data or
// metadata, when l loads it, is not JSON, naming it.
func checkBatchEvents(events []projection.Event, l *loadPlan) error {
	checkData, checkMetadata := l.loads(data), l.loads(metadata)
	for i := range events {
		e := &events[i]
		for _, v := range [...]uint64{e.Revision, e.Position.Commit, e.Position.Prepare} {
			if v > tracking.MaxStorablePosition {
				return fmt.Errorf("%s: value %d does not fit a bigint column", describe(*e), v)
			}
		}
		if _, err := jsonNull(e.Data); checkData && err != nil {
			return fmt.Errorf("%s: data is not JSON (the events relation has it as jsonb): %w", describe(*e), err)
		}
		if _, err := jsonNull(e.Metadata); checkMetadata && err != nil {
			return fmt.Errorf("%s: metadata is not JSON (the events relation has it as jsonb): %w", describe(*e), err)
		}
	}
	return nil
}

// encode fills a with the arrays of the columns l loads of events, after checking them (see
// checkBatchEvents).
func (a *eventArrays) encode(events []projection.Event, l *loadPlan) error {
	if err := checkBatchEvents(events, l); err != nil {
		return err
	}
	a.buf, a.ends = slices.Grow(a.buf[:0], encodedSize(events, l)), a.ends[:0]
	for i, c := range l.cols {
		a.appendColumn(l.fields[i], c.Type, events)
		a.ends = append(a.ends, len(a.buf))
	}
	a.values = a.values[:0]
	start := 0
	for _, end := range a.ends {
		a.values = append(a.values, a.buf[start:end:end])
		start = end
	}
	return nil
}

// appendColumn appends the binary array of field f (of SQL type typ) of events: dimensions,
// then each element as its length (-1 for NULL) and bytes.
func (a *eventArrays) appendColumn(f field, typ string, events []projection.Event) {
	_, elem := arrayOID(typ)
	b := a.buf
	b = binary.BigEndian.AppendUint32(b, 1) // one dimension
	flags := len(b)
	b = binary.BigEndian.AppendUint32(b, 0) // has NULLs: set below
	b = binary.BigEndian.AppendUint32(b, elem)
	b = binary.BigEndian.AppendUint32(b, uint32(len(events)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	hasNull := false
	for i := range events {
		e := &events[i]
		switch f {
		case streamID:
			b = appendText(b, e.Stream)
		case eventType:
			b = appendText(b, e.Type)
		case eventID:
			b = appendText(b, e.ID)
		case contentType:
			b = appendText(b, e.ContentType)
		case revision:
			b = appendInt8(b, int64(e.Revision))
		case commitPosition:
			b = appendInt8(b, int64(e.Position.Commit))
		case preparePosition:
			b = appendInt8(b, int64(e.Position.Prepare))
		case created:
			b = appendInt8(b, timestampMicros(e.Created))
		case data, metadata:
			v := e.Data
			if f == metadata {
				v = e.Metadata
			}
			if isBlank(v) {
				b = binary.BigEndian.AppendUint32(b, 0xffffffff) // NULL
				hasNull = true
				continue
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	if hasNull {
		binary.BigEndian.PutUint32(b[flags:], 1)
	}
	a.buf = b
}

// encodedSize is the size of the arrays of the columns l loads of events: the headers, and
// each element's length and bytes.
func encodedSize(events []projection.Event, l *loadPlan) int {
	const header, length, int8Size = 20, 4, 8
	n := len(l.fields) * (header + len(events)*length)
	for _, f := range l.fields {
		for i := range events {
			e := &events[i]
			switch f {
			case streamID:
				n += len(e.Stream)
			case eventType:
				n += len(e.Type)
			case eventID:
				n += len(e.ID)
			case contentType:
				n += len(e.ContentType)
			case data:
				n += len(e.Data)
			case metadata:
				n += len(e.Metadata)
			default:
				n += int8Size
			}
		}
	}
	return n
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// timestampMicros is t as PostgreSQL's timestamptz: microseconds since 2000-01-01 UTC
// (truncated, as pgx encodes a time.Time).
func timestampMicros(t time.Time) int64 {
	return t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - microsecondsToY2K
}

// isBlank reports whether b is empty or white space only: a NULL jsonb.
func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }
