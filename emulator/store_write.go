package emulator

// The store's write path: appends, soft and hard deletes, their optimistic-concurrency and
// idempotency checks, and the commit that persists and publishes a write.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Append appends events to one stream after checking a.Expected.
// Errors: *WrongExpectedVersionError, *StreamDeletedError,
// *CorruptedIdempotencyError, ErrStoreClosed, or a persistence failure.
func (s *Store) Append(a StreamAppend) (AppendResult, error) {
	res, _, err := s.AppendMulti([]StreamAppend{a})
	if err != nil {
		return AppendResult{}, err
	}
	return res[0], nil
}

// AppendMulti appends to several streams atomically: either every check
// passes and every event is written, in request order, or nothing is. The
// returned position is the commit position of the write (the last record
// written, or the highest original position on a pure idempotent replay).
func (s *Store) AppendMulti(as []StreamAppend) ([]AppendResult, uint64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.isClosed() {
		return nil, 0, ErrStoreClosed
	}
	w := s.newWrite()
	results := make([]AppendResult, len(as))
	var commit uint64
	for i, a := range as {
		r, err := w.append(a)
		if err != nil {
			return nil, 0, err
		}
		results[i] = r
		commit = max(commit, r.Position)
	}
	if len(w.recs) > 0 {
		commit = w.recs[len(w.recs)-1].pos
	}
	if err := s.commit(w); err != nil {
		return nil, 0, err
	}
	return results, commit, nil
}

// Delete soft-deletes a stream: it writes {"$tb": MaxInt64} as the stream's
// metadata and returns that record's position. A later append undeletes the
// stream, continuing its numbering.
func (s *Store) Delete(name string, exp Expected) (uint64, error) {
	return s.deleteStream(name, exp, func(w *write, st *stream) (*record, error) {
		if st.last() < 0 && !st.hasMetadata() {
			return nil, &WrongExpectedVersionError{Stream: name, Expected: exp, Actual: -1}
		}
		if err := w.checkPlain(st, name, exp); err != nil {
			return nil, err
		}
		return w.add(metaName(name), -1, uuid.New(), metadataEventType, flagJSON,
			[]byte(`{"$tb":9223372036854775807}`), nil), nil
	})
}

// Tombstone hard-deletes a stream: it writes a $streamDeleted record with
// revision MaxInt64 and returns its position. Every later write, read and
// subscription to the stream fails with stream-deleted.
func (s *Store) Tombstone(name string, exp Expected) (uint64, error) {
	return s.deleteStream(name, exp, func(w *write, st *stream) (*record, error) {
		if err := w.checkPlain(st, name, exp); err != nil {
			return nil, err
		}
		return w.add(name, deletedStreamNumber, uuid.New(), tombstoneEventType, 0, nil, nil), nil
	})
}

// deleteStream is the shared frame of Delete and Tombstone: under the write
// lock, it refuses a closed store or an already tombstoned stream, lets mark
// check exp and add the deleting record, commits, and returns that record's
// position.
func (s *Store) deleteStream(name string, exp Expected, mark func(*write, *stream) (*record, error)) (uint64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.isClosed() {
		return 0, ErrStoreClosed
	}
	w := s.newWrite()
	st := s.streams[name]
	if st.tombstoned() {
		return 0, &StreamDeletedError{Stream: name}
	}
	r, err := mark(w, st)
	if err != nil {
		return 0, err
	}
	if err := s.commit(w); err != nil {
		return 0, err
	}
	return r.pos, nil
}

// write is a batch of records being prepared under writeMu. It tracks the
// event counts the batch adds per stream, so checks within one write see
// the batch's own earlier records.
type write struct {
	s       *Store
	now     int64
	nowStr  string // now in decimal, shared by the write's records
	end     uint64
	recs    []*record
	names   []string         // stream of each record
	pending map[string]int64 // events this write adds per stream
}

func (s *Store) newWrite() *write {
	now := ticksOf(s.now())
	return &write{s: s, now: now, nowStr: strconv.FormatInt(now, 10), end: s.end}
}

// ticksOf converts t to .NET ticks since the Unix epoch.
func ticksOf(t time.Time) int64 { return t.UnixNano() / 100 }

// lastOf is the last event number of a stream, counting this write's events.
func (w *write) lastOf(name string, st *stream) int64 {
	return st.last() + w.pending[name]
}

// add prepares one record at the write's end offset. number < 0 means "next
// event number of the stream".
func (w *write) add(name string, number int64, id uuid.UUID, typ string, flags uint8, data, meta []byte) *record {
	if number < 0 {
		number = w.lastOf(name, w.s.streams[name]) + 1
		if w.pending == nil {
			w.pending = make(map[string]int64)
		}
		w.pending[name]++
	}
	r := &record{
		pos:        w.end,
		number:     number,
		id:         id,
		typ:        w.s.internType(typ),
		created:    w.now,
		createdStr: w.nowStr,
		flags:      flags,
		data:       data,
		meta:       meta,
	}
	// The stream pointer is set when the record is applied.
	w.end += recordSize(name, typ, data, meta)
	w.recs = append(w.recs, r)
	w.names = append(w.names, name)
	return r
}

// checkPlain runs the expected-revision check without idempotency (deletes).
func (w *write) checkPlain(st *stream, name string, exp Expected) error {
	last := w.lastOf(name, st)
	switch exp.Kind {
	case ExpectAny:
		return nil
	case ExpectNoStream:
		if last == -1 || st.softDeleted() {
			return nil
		}
	case ExpectStreamExists:
		if st.softDeleted() {
			return &StreamDeletedError{Stream: name}
		}
		if last >= 0 || st.hasMetadata() {
			return nil
		}
	case ExpectRevision:
		if int64(exp.Revision) == last && exp.Revision <= math.MaxInt64 {
			return nil
		}
	}
	return &WrongExpectedVersionError{Stream: name, Expected: exp, Actual: last}
}

// append checks and prepares one stream's part of the write.
func (w *write) append(a StreamAppend) (AppendResult, error) {
	name := a.Stream
	if name == "" {
		return AppendResult{}, errors.New("emulator: append to a stream with an empty name")
	}
	st := w.s.streams[name]
	if st.tombstoned() {
		return AppendResult{}, &StreamDeletedError{Stream: name}
	}
	if base := baseOfMeta(w.s, name); base.tombstoned() {
		return AppendResult{}, &StreamDeletedError{Stream: name}
	}
	last := w.lastOf(name, st)
	// Idempotency first: a replay of events already written succeeds
	// without writing, whatever the current revision.
	if res, ok, err := w.idempotent(st, name, a); ok || err != nil {
		return res, err
	}
	if err := w.checkPlain(st, name, a.Expected); err != nil {
		return AppendResult{}, err
	}
	if len(a.Events) == 0 {
		return AppendResult{Revision: last}, nil
	}
	if st.softDeleted() {
		// Undelete: new metadata that keeps the old keys and truncates
		// before the new events; the numbering continues.
		data := undeleteMetadata(st.metaStream, last+1)
		w.add(metaName(name), -1, uuid.New(), metadataEventType, flagJSON, data, nil)
	}
	var lastRec *record
	for _, e := range a.Events {
		flags := uint8(0)
		if e.IsJSON {
			flags |= flagJSON
		}
		meta := e.Metadata
		if e.PropertyMetadata {
			flags |= flagPropertyMetadata
			meta = synthesizePropertyMetadata(e.Metadata, e.Type, e.IsJSON)
		}
		id := e.ID
		if id == uuid.Nil {
			id = uuid.New()
		}
		lastRec = w.add(name, -1, id, e.Type, flags, e.Data, meta)
	}
	return AppendResult{Revision: lastRec.number, Position: lastRec.pos}, nil
}

// baseOfMeta is the stream a metastream name describes, if it exists.
func baseOfMeta(s *Store, name string) *stream {
	if !isMetaName(name) {
		return nil
	}
	return s.streams[name[2:]]
}

// idempotent reports whether a repeats events already in the stream. With an
// explicit revision (or NoStream) the ids must sit right after it; with Any
// or StreamExists they may sit anywhere in the stream. A partial repeat is
// an error.
func (w *write) idempotent(st *stream, name string, a StreamAppend) (AppendResult, bool, error) {
	if st == nil || len(a.Events) == 0 || w.pending[name] > 0 {
		return AppendResult{}, false, nil
	}
	var from int64
	switch a.Expected.Kind {
	case ExpectRevision:
		if int64(a.Expected.Revision) >= st.last() || a.Expected.Revision > math.MaxInt64 {
			return AppendResult{}, false, nil
		}
		from = int64(a.Expected.Revision) + 1
	case ExpectNoStream:
		if st.last() < 0 || st.softDeleted() {
			return AppendResult{}, false, nil
		}
		from = 0
	default:
		first := w.s.findEvent(st, a.Events[0].ID)
		if first == nil {
			return AppendResult{}, false, nil
		}
		from = first.number
	}
	matched := 0
	for i, e := range a.Events {
		n := from + int64(i)
		if n > st.last() || st.events[n].id != e.ID {
			break
		}
		matched++
	}
	switch {
	case matched == len(a.Events):
		r := st.events[from+int64(matched)-1]
		return AppendResult{Revision: r.number, Position: r.pos}, true, nil
	case matched > 0:
		return AppendResult{}, false, &CorruptedIdempotencyError{Stream: name}
	default:
		return AppendResult{}, false, nil
	}
}

// findEvent finds the event with id in st.
func (s *Store) findEvent(st *stream, id uuid.UUID) *record {
	r := s.ids[id]
	if r == nil {
		return nil
	}
	if r.stream == st {
		return r
	}
	// The id was first used in another stream: search this one.
	for _, e := range st.events {
		if e.id == id {
			return e
		}
	}
	return nil
}

// commit persists and publishes a prepared write, then wakes subscribers.
func (s *Store) commit(w *write) error {
	if len(w.recs) == 0 {
		return nil
	}
	if s.file != nil {
		if err := s.file.appendBatch(w.recs, w.names); err != nil {
			return fmt.Errorf("emulator: persist write: %w", err)
		}
	}
	s.publish(w)
	return nil
}

// publish applies the written records to the in-memory log and wakes the readers, under the
// write lock (released on every path, a panic included).
func (s *Store) publish(w *write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range w.recs {
		s.apply(r, w.names[i])
	}
	close(s.notify)
	s.notify = make(chan struct{})
}
