package emulator

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Store is the emulator's event log: one global, append-only log of records
// ($all) with per-stream indexes, stream metadata, soft and hard deletes and
// optimistic concurrency, optionally persisted to a log file in
// StoreOptions.DataDir.
//
// Positions are virtual byte offsets: each record advances the writer's end
// offset by a plausible record size, so positions are strictly increasing but
// not contiguous, and commit == prepare == the record's offset, as for the
// self-committed records of a real single node.
//
// Readers take the read lock only to copy a page of record pointers (always
// released with defer); records are immutable once written, so filters are
// matched after the lock is released. Subscribers are woken by a broadcast channel
// that is closed and replaced on each commit, and read the log themselves, so
// a slow subscriber never holds back appends or other subscribers.
type Store struct {
	opts StoreOptions
	now  func() time.Time
	log  *zap.Logger

	// writeMu serializes writers: checks, persistence and publication of one
	// write happen under it. Only writers mutate state, so a writer may read
	// state under writeMu alone; mu guards state against concurrent readers.
	writeMu sync.Mutex
	file    *logFile // nil for an in-memory store

	mu      sync.RWMutex
	recs    []*record
	end     uint64 // writer's end offset: the position of the next record
	streams map[string]*stream
	ids     map[uuid.UUID]*record // first record with each event id
	notify  chan struct{}         // closed and replaced on each commit
	drop    chan struct{}         // closed and replaced by DropSubscriptions
	dropErr error                 // the error of the last DropSubscriptions
	closed  bool
	done    chan struct{} // closed by Close

	subs  atomic.Int64               // active subscriptions
	hooks atomic.Pointer[storeHooks] // test hooks; nil in normal use

	types map[string]string // interned event types (writers only)
}

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// DataDir is the directory of the persisted log; "" keeps the log in
	// memory only. The directory is created if needed and an existing log in
	// it is reloaded.
	DataDir string
	// Secure seeds the $users, $user-admin and $user-ops streams a node with
	// authentication enabled has.
	Secure bool
	// Now is the clock for event timestamps and $maxAge; nil means time.Now.
	Now func() time.Time
	// Logger receives the store's few log lines (reload, torn tail); nil
	// logs to stderr.
	Logger *zap.Logger
	// FilterBudget is the time a read's or subscription's filter may spend
	// on one page of records; 0 means DefaultFilterBudget.
	FilterBudget time.Duration
	// MaxSubscriptions caps the subscriptions served at once; 0 means
	// DefaultMaxSubscriptions.
	MaxSubscriptions int
}

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

// OpenStore opens a store: in memory, or persisted in opts.DataDir, reloading
// the log found there. A fresh store is seeded with the system events a new
// node writes.
func OpenStore(opts StoreOptions) (*Store, error) {
	s := &Store{
		opts:    opts,
		now:     opts.Now,
		log:     opts.Logger,
		end:     firstRecordOffset,
		streams: make(map[string]*stream),
		ids:     make(map[uuid.UUID]*record),
		notify:  make(chan struct{}),
		drop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
			zapcore.Lock(os.Stderr), zap.InfoLevel))
	}
	if opts.DataDir != "" {
		f, err := openLogFile(opts.DataDir, s.log, s.applyLoaded)
		if err != nil {
			return nil, err
		}
		s.file = f
	}
	if len(s.recs) == 0 {
		if err := s.seed(); err != nil {
			if s.file != nil {
				_ = s.file.close()
			}
			return nil, fmt.Errorf("emulator: seed log: %w", err)
		}
	}
	return s, nil
}

// firstRecordOffset is where the first record goes: a real log starts with
// system records (epoch information), so every event sits at a position > 0.
const firstRecordOffset = 256

// recordOverhead approximates the fixed part of a prepare record on disk.
const recordOverhead = 92

func recordSize(stream, typ string, data, meta []byte) uint64 {
	return uint64(recordOverhead + len(stream) + len(typ) + len(data) + len(meta))
}

// Close closes the log file (if any) and ends every subscription with
// Unavailable. Later writes fail with ErrStoreClosed. Close is idempotent.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	if s.file != nil {
		return s.file.close()
	}
	return nil
}

// DropSubscriptions ends every subscription active at the time of the call
// with err (a gRPC status error; nil means Unavailable). Later subscriptions
// are not affected.
func (s *Store) DropSubscriptions(err error) {
	if err == nil {
		err = status.Error(codes.Unavailable, "Subscriptions Dropped")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropErr = err
	close(s.drop)
	s.drop = make(chan struct{})
}

// ActiveSubscriptions is the number of subscriptions being served.
func (s *Store) ActiveSubscriptions() int { return int(s.subs.Load()) }

// Head returns the writer's end offset (the position the next record will
// get) and the number of records in the log.
func (s *Store) Head() (end uint64, records int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.end, len(s.recs)
}

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

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// maxInternedTypes bounds the event-type intern table.
const maxInternedTypes = 10000

// internType returns one shared copy of an event type, so a long log of
// few types does not hold a string per record. Callers hold writeMu.
func (s *Store) internType(typ string) string {
	if t, ok := s.types[typ]; ok {
		return t
	}
	if s.types == nil {
		s.types = make(map[string]string)
	}
	if len(s.types) < maxInternedTypes {
		s.types[typ] = typ
	}
	return typ
}

// metaName is the metastream of a stream.
func metaName(name string) string { return "$$" + name }

// isMetaName says name is a metastream.
func isMetaName(name string) bool { return len(name) > 2 && name[0] == '$' && name[1] == '$' }

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

// seed writes the system events a fresh node has.
func (s *Store) seed() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	w := s.newWrite()
	w.add("$$$scavenges", -1, uuid.New(), metadataEventType, flagJSON,
		[]byte(`{"$maxAge":2592000,"$acl":{"$w":"$admins","$d":"$admins","$mw":"$admins","$r":"$ops"}}`), nil)
	if s.opts.Secure {
		users := []struct{ login, full, group string }{
			{"admin", "KurrentDB Administrator", "$admins"},
			{"ops", "KurrentDB Operations", "$ops"},
		}
		for _, u := range users {
			w.add("$user-"+u.login, -1, uuid.New(), "$UserCreated", flagJSON, []byte(fmt.Sprintf(
				`{"loginName":%q,"fullName":%q,"salt":"","hash":"","disabled":false,"groups":[%q]}`,
				u.login, u.full, u.group)), nil)
			w.add("$users", -1, uuid.New(), "$User", flagJSON, []byte(strconv.Quote(u.login)), nil)
		}
	}
	return s.commit(w)
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
