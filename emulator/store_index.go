package emulator

// The store's in-memory log: records, the per-stream indexes and the stream metadata that
// affects reads, and how a written or reloaded record is applied to them.

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/google/uuid"
)

// Record flags.
const (
	flagJSON uint8 = 1 << iota
	flagPropertyMetadata
)

// Reserved names.
const (
	metadataEventType   = "$metadata"
	tombstoneEventType  = "$streamDeleted"
	linkEventType       = "$>"
	epochInformation    = "$epoch-information"
	deletedStreamNumber = math.MaxInt64 // $tb of a soft-deleted stream; number of a tombstone
)

// record is one event in the log. Records are immutable once published.
type record struct {
	pos        uint64
	number     int64 // stream revision; math.MaxInt64 for a tombstone
	stream     *stream
	id         uuid.UUID
	typ        string
	created    int64  // .NET ticks since the Unix epoch
	createdStr string // created in decimal, as reads send it
	flags      uint8
	data       []byte
	meta       []byte // as reads return it (property metadata already synthesized)
}

func (r *record) isJSON() bool { return r.flags&flagJSON != 0 }

// stream is the index of one stream.
type stream struct {
	name   string
	nameB  []byte    // name as sent in StreamIdentifier
	events []*record // events[i] has revision i
	tomb   *record   // the tombstone, if hard-deleted
	meta   streamMeta
	// base is the stream a metastream ($$name) describes; nil otherwise.
	base *stream
	// metaStream is this stream's metastream, if it was ever written.
	metaStream *stream
	// hiddenFromAll caches defaultAllFilter on the stream name.
	hiddenFromAll bool
}

// last is the stream's last event number, -1 when it has none.
func (st *stream) last() int64 {
	if st == nil {
		return -1
	}
	return int64(len(st.events)) - 1
}

func (st *stream) tombstoned() bool {
	if st == nil {
		return false
	}
	if st.tomb != nil {
		return true
	}
	return st.base != nil && st.base.tomb != nil
}

func (st *stream) softDeleted() bool {
	return st != nil && st.base == nil && st.meta.tb == deletedStreamNumber
}

// hasMetadata says the stream's metastream has events.
func (st *stream) hasMetadata() bool {
	return st != nil && st.metaStream != nil && len(st.metaStream.events) > 0
}

// metaName is the metastream of a stream.
func metaName(name string) string { return "$$" + name }

// isMetaName says name is a metastream.
func isMetaName(name string) bool { return len(name) > 2 && name[0] == '$' && name[1] == '$' }

// applyLoaded applies a record read back from the log file.
func (s *Store) applyLoaded(r *record, name string) error {
	if len(s.recs) > 0 && r.pos <= s.recs[len(s.recs)-1].pos {
		return fmt.Errorf("record at position %d does not follow position %d", r.pos, s.recs[len(s.recs)-1].pos)
	}
	st := s.streams[name]
	if r.number == deletedStreamNumber && r.typ != tombstoneEventType {
		return fmt.Errorf("record at position %d has the tombstone revision but type %q", r.pos, r.typ)
	}
	if r.number != deletedStreamNumber && r.number != st.last()+1 {
		return fmt.Errorf("record at position %d has revision %d in stream %q, want %d", r.pos, r.number, name, st.last()+1)
	}
	r.typ = s.internType(r.typ)
	s.apply(r, name)
	return nil
}

// apply adds a record to the log and the indexes. Callers hold mu (or own
// the store exclusively).
func (s *Store) apply(r *record, name string) {
	st := s.stream(name)
	r.stream = st
	s.recs = append(s.recs, r)
	s.end = r.pos + recordSize(name, r.typ, r.data, r.meta)
	if r.number == deletedStreamNumber && r.typ == tombstoneEventType {
		st.tomb = r
		return
	}
	st.events = append(st.events, r)
	if _, seen := s.ids[r.id]; !seen {
		s.ids[r.id] = r
	}
	if st.base != nil {
		st.base.meta = parseStreamMeta(r.data)
	}
}

// stream returns the index of name, creating it (and linking a metastream
// with its base) if needed.
func (s *Store) stream(name string) *stream {
	if st := s.streams[name]; st != nil {
		return st
	}
	st := &stream{name: name, nameB: []byte(name), hiddenFromAll: !defaultAllFilter(name, "")}
	s.streams[name] = st
	if isMetaName(name) {
		base := s.stream(name[2:])
		st.base = base
		base.metaStream = st
	}
	return st
}

// streamMeta is the part of stream metadata that affects reads.
type streamMeta struct {
	maxCount int64 // 0 = none
	maxAge   int64 // seconds; 0 = none
	tb       int64 // truncate before; 0 = none
}

// minEvent is the lowest visible event number of a stream whose last event
// number is last.
func (st *stream) minEvent(last int64) int64 {
	m := int64(0)
	mc := st.meta.maxCount
	if st.base != nil {
		mc = 1 // metastreams keep only their latest event
	}
	if mc > 0 && last-mc+1 > m {
		m = last - mc + 1
	}
	if st.meta.tb > m {
		m = st.meta.tb
	}
	return m
}

// expiredBefore is the created tick below which events are invisible, or
// math.MinInt64 when the stream has no $maxAge.
func (st *stream) expiredBefore(nowTicks int64) int64 {
	if st.meta.maxAge <= 0 {
		return math.MinInt64
	}
	return nowTicks - st.meta.maxAge*int64(time.Second/100)
}

// sortedKeys is used to write metadata JSON deterministically.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
