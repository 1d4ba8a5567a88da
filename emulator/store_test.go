package emulator

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// stOpen opens a store for a test and closes it at the end.
func stOpen(t testing.TB, opts StoreOptions) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s, err := OpenStore(opts)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// stEvent is a proposed JSON event with a fresh id.
func stEvent(typ, data string) ProposedEvent {
	return ProposedEvent{ID: uuid.New(), Type: typ, IsJSON: true, Data: []byte(data), Metadata: []byte{}}
}

func stEvents(n int, typ string) []ProposedEvent {
	out := make([]ProposedEvent, n)
	for i := range out {
		out[i] = stEvent(typ, `{"i":`+strconv.Itoa(i)+`}`)
	}
	return out
}

func stAppend(t testing.TB, s *Store, stream string, exp Expected, evs ...ProposedEvent) AppendResult {
	t.Helper()
	res, err := s.Append(StreamAppend{Stream: stream, Expected: exp, Events: evs})
	if err != nil {
		t.Fatalf("Append(%s, %+v): %v", stream, exp, err)
	}
	return res
}

func stRev(r uint64) Expected { return Expected{Kind: ExpectRevision, Revision: r} }

var (
	expAny      = Expected{Kind: ExpectAny}
	expNoStream = Expected{Kind: ExpectNoStream}
	expExists   = Expected{Kind: ExpectStreamExists}
)

func stWantWEV(t *testing.T, err error, actual int64) {
	t.Helper()
	var wev *WrongExpectedVersionError
	if !errors.As(err, &wev) {
		t.Fatalf("err = %v, want *WrongExpectedVersionError", err)
	}
	if wev.Actual != actual {
		t.Fatalf("WrongExpectedVersionError.Actual = %d, want %d", wev.Actual, actual)
	}
}

func stWantDeleted(t *testing.T, err error) {
	t.Helper()
	var sd *StreamDeletedError
	if !errors.As(err, &sd) {
		t.Fatalf("err = %v, want *StreamDeletedError", err)
	}
}

func TestStoreSeedsSystemEvents(t *testing.T) {
	for _, secure := range []bool{false, true} {
		s := stOpen(t, StoreOptions{Secure: secure})
		types := map[string]bool{}
		for _, r := range s.recs {
			types[r.stream.name+"/"+r.typ] = true
			if r.pos == 0 {
				t.Fatalf("seed record at position 0")
			}
		}
		if !types["$$$scavenges/$metadata"] {
			t.Fatalf("secure=%v: no $metadata on $$$scavenges in %v", secure, types)
		}
		for _, want := range []string{"$users/$User", "$user-admin/$UserCreated", "$user-ops/$UserCreated"} {
			if types[want] != secure {
				t.Fatalf("secure=%v: seed %s present = %v", secure, want, types[want])
			}
		}
	}
}

func TestStoreAppendPositionsAndRevisions(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	s := stOpen(t, StoreOptions{Now: func() time.Time { return clock }})
	end0, _ := s.Head()
	res := stAppend(t, s, "orders-1", expNoStream, stEvents(3, "OrderPlaced")...)
	if res.Revision != 2 {
		t.Fatalf("Revision = %d, want 2", res.Revision)
	}
	st := s.streams["orders-1"]
	if len(st.events) != 3 {
		t.Fatalf("stream has %d events, want 3", len(st.events))
	}
	if st.events[0].pos != end0 {
		t.Fatalf("first event at %d, want the previous end offset %d", st.events[0].pos, end0)
	}
	for i := 1; i < 3; i++ {
		if st.events[i].pos <= st.events[i-1].pos {
			t.Fatalf("positions not increasing: %d then %d", st.events[i-1].pos, st.events[i].pos)
		}
	}
	if res.Position != st.events[2].pos {
		t.Fatalf("Position = %d, want the last event's %d", res.Position, st.events[2].pos)
	}
	wantTicks := clock.UnixNano() / 100
	if st.events[0].created != wantTicks || st.events[0].createdStr != strconv.FormatInt(wantTicks, 10) {
		t.Fatalf("created = %d/%q, want ticks %d", st.events[0].created, st.events[0].createdStr, wantTicks)
	}
	// An empty append reports the current revision and writes nothing.
	_, n := s.Head()
	res = stAppend(t, s, "orders-1", stRev(2))
	if res.Revision != 2 || res.Position != 0 {
		t.Fatalf("empty append = %+v, want revision 2, no position", res)
	}
	if _, n2 := s.Head(); n2 != n {
		t.Fatalf("empty append wrote %d records", n2-n)
	}
}

func TestStoreExpectedRevisionRules(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	// Missing stream.
	_, err := s.Append(StreamAppend{Stream: "a", Expected: expExists, Events: stEvents(1, "E")})
	stWantWEV(t, err, -1)
	_, err = s.Append(StreamAppend{Stream: "a", Expected: stRev(0), Events: stEvents(1, "E")})
	stWantWEV(t, err, -1)
	stAppend(t, s, "a", expNoStream, stEvents(2, "E")...)
	// Existing stream with last = 1.
	_, err = s.Append(StreamAppend{Stream: "a", Expected: expNoStream, Events: stEvents(1, "E")})
	stWantWEV(t, err, 1)
	_, err = s.Append(StreamAppend{Stream: "a", Expected: stRev(0), Events: stEvents(1, "E")})
	stWantWEV(t, err, 1)
	_, err = s.Append(StreamAppend{Stream: "a", Expected: stRev(5), Events: stEvents(1, "E")})
	stWantWEV(t, err, 1)
	if r := stAppend(t, s, "a", stRev(1), stEvents(1, "E")...); r.Revision != 2 {
		t.Fatalf("Revision = %d, want 2", r.Revision)
	}
	if r := stAppend(t, s, "a", expExists, stEvents(1, "E")...); r.Revision != 3 {
		t.Fatalf("Revision = %d, want 3", r.Revision)
	}
	if r := stAppend(t, s, "a", expAny, stEvents(1, "E")...); r.Revision != 4 {
		t.Fatalf("Revision = %d, want 4", r.Revision)
	}
	// A stream with only metadata expExists for StreamExists.
	stAppend(t, s, "$$b", expAny, stEvent(metadataEventType, `{"$maxCount":5}`))
	if r := stAppend(t, s, "b", expExists, stEvents(1, "E")...); r.Revision != 0 {
		t.Fatalf("Revision = %d, want 0", r.Revision)
	}
}

func TestStoreIdempotency(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	evs := stEvents(3, "E")
	first := stAppend(t, s, "s", expNoStream, evs...)
	_, n := s.Head()

	// Strong: the same ids after the same expected revision.
	again := stAppend(t, s, "s", expNoStream, evs...)
	if again != first {
		t.Fatalf("replay = %+v, want the original %+v", again, first)
	}
	tail := stAppend(t, s, "s", stRev(0), evs[1:]...)
	if tail.Revision != 2 || tail.Position != first.Position {
		t.Fatalf("replay of the tail = %+v, want revision 2 at %d", tail, first.Position)
	}
	// Weak: Any / StreamExists find the ids anywhere in the stream.
	mid := stAppend(t, s, "s", expAny, evs[1])
	if mid.Revision != 1 || mid.Position != s.streams["s"].events[1].pos {
		t.Fatalf("weak replay = %+v, want revision 1", mid)
	}
	if r := stAppend(t, s, "s", expExists, evs...); r != first {
		t.Fatalf("weak replay = %+v, want %+v", r, first)
	}
	if _, n2 := s.Head(); n2 != n {
		t.Fatalf("replays wrote %d records", n2-n)
	}
	// Partial match: an error, nothing written.
	partial := []ProposedEvent{evs[0], stEvent("E", "{}")}
	for _, exp := range []Expected{expNoStream, expAny} {
		_, err := s.Append(StreamAppend{Stream: "s", Expected: exp, Events: partial})
		var ci *CorruptedIdempotencyError
		if !errors.As(err, &ci) {
			t.Fatalf("partial replay with %+v: err = %v, want *CorruptedIdempotencyError", exp, err)
		}
	}
	// New ids with a stale revision: wrong expected version.
	_, err := s.Append(StreamAppend{Stream: "s", Expected: stRev(0), Events: stEvents(1, "E")})
	stWantWEV(t, err, 2)
}

func TestStoreSoftDeleteAndUndelete(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	// Deleting a stream that never existed fails.
	_, err := s.Delete("gone", expAny)
	stWantWEV(t, err, -1)

	stAppend(t, s, "d", expNoStream, stEvents(10, "E")...)
	stAppend(t, s, "$$d", expAny, stEvent(metadataEventType, `{"custom":"kept","$maxCount":100}`))
	_, err = s.Delete("d", stRev(3))
	stWantWEV(t, err, 9)
	pos, err := s.Delete("d", stRev(9))
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	st := s.streams["d"]
	meta := st.metaStream.events[len(st.metaStream.events)-1]
	if meta.pos != pos || string(meta.data) != `{"$tb":9223372036854775807}` || !st.softDeleted() {
		t.Fatalf("soft delete wrote %s at %d (returned %d), softDeleted=%v", meta.data, meta.pos, pos, st.softDeleted())
	}
	// StreamExists on a soft-deleted stream: stream deleted.
	_, err = s.Append(StreamAppend{Stream: "d", Expected: expExists, Events: stEvents(1, "E")})
	stWantDeleted(t, err)
	// NoStream is allowed and undeletes; numbering continues.
	res := stAppend(t, s, "d", expNoStream, stEvents(2, "E")...)
	if res.Revision != 11 {
		t.Fatalf("revision after undelete = %d, want 11", res.Revision)
	}
	meta = st.metaStream.events[len(st.metaStream.events)-1]
	if string(meta.data) != `{"$tb":10}` {
		t.Fatalf("undelete metadata = %s, want {\"$tb\":10}", meta.data)
	}
	if st.softDeleted() || st.minEvent(st.last()) != 10 {
		t.Fatalf("after undelete: softDeleted=%v minEvent=%d, want false, 10", st.softDeleted(), st.minEvent(st.last()))
	}
}

func TestStoreUndeleteKeepsOtherMetadata(t *testing.T) {
	meta := undeleteMetadata(&stream{events: []*record{{data: []byte(`{"$tb":9223372036854775807,"x":{"y":1},"$maxAge":5}`)}}}, 4)
	if string(meta) != `{"$maxAge":5,"$tb":4,"x":{"y":1}}` {
		t.Fatalf("undelete metadata = %s", meta)
	}
}

func TestStoreTombstone(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	// Tombstoning a missing stream with Any or NoStream succeeds.
	pos, err := s.Tombstone("never", expNoStream)
	if err != nil || pos == 0 {
		t.Fatalf("Tombstone(missing) = %d, %v", pos, err)
	}
	stAppend(t, s, "t", expNoStream, stEvents(1, "E")...)
	_, err = s.Tombstone("t", stRev(5))
	stWantWEV(t, err, 0)
	pos, err = s.Tombstone("t", stRev(0))
	if err != nil {
		t.Fatalf("Tombstone: %v", err)
	}
	tomb := s.streams["t"].tomb
	if tomb == nil || tomb.pos != pos || tomb.number != math.MaxInt64 || tomb.typ != "$streamDeleted" || tomb.isJSON() {
		t.Fatalf("tombstone record = %+v at %d", tomb, pos)
	}
	for _, exp := range []Expected{expAny, expNoStream, expExists, stRev(0)} {
		_, err := s.Append(StreamAppend{Stream: "t", Expected: exp, Events: stEvents(1, "E")})
		stWantDeleted(t, err)
	}
	_, err = s.Append(StreamAppend{Stream: "$$t", Expected: expAny, Events: stEvents(1, "$metadata")})
	stWantDeleted(t, err)
	_, err = s.Delete("t", expAny)
	stWantDeleted(t, err)
	_, err = s.Tombstone("t", expAny)
	stWantDeleted(t, err)
}

func TestStoreAppendMultiIsAtomic(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	stAppend(t, s, "m1", expNoStream, stEvents(1, "E")...)
	_, n := s.Head()
	_, _, err := s.AppendMulti([]StreamAppend{
		{Stream: "m2", Expected: expNoStream, Events: stEvents(2, "E")},
		{Stream: "m1", Expected: expNoStream, Events: stEvents(1, "E")},
	})
	stWantWEV(t, err, 0)
	if _, n2 := s.Head(); n2 != n {
		t.Fatalf("failed multi-append wrote %d records", n2-n)
	}
	res, commit, err := s.AppendMulti([]StreamAppend{
		{Stream: "m2", Expected: expNoStream, Events: stEvents(2, "E")},
		{Stream: "m1", Expected: stRev(0), Events: stEvents(1, "E")},
	})
	if err != nil {
		t.Fatalf("AppendMulti: %v", err)
	}
	if res[0].Revision != 1 || res[1].Revision != 1 || commit != res[1].Position || res[0].Position >= commit {
		t.Fatalf("AppendMulti = %+v, commit %d", res, commit)
	}
}

func TestStorePropertyMetadata(t *testing.T) {
	s := stOpen(t, StoreOptions{})
	stAppend(t, s, "p", expAny,
		ProposedEvent{ID: uuid.New(), Type: "OrderCreated", Data: []byte("x"), Metadata: []byte(`{"stringValue":"string","$schema.format":"Bytes"}`), PropertyMetadata: true},
		ProposedEvent{ID: uuid.New(), Type: "J", IsJSON: true, Data: []byte("{}"), PropertyMetadata: true})
	evs := s.streams["p"].events
	if got := string(evs[0].meta); got != `{"$schema.format":"Bytes","$schema.name":"OrderCreated","stringValue":"string"}` {
		t.Fatalf("synthesized metadata = %s", got)
	}
	if got := string(evs[1].meta); got != `{"$schema.format":"Json","$schema.name":"J"}` {
		t.Fatalf("synthesized metadata = %s", got)
	}
}

func TestStoreMetadataVisibility(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := stOpen(t, StoreOptions{Now: clock})
	stAppend(t, s, "v", expNoStream, stEvents(10, "E")...)
	st := s.streams["v"]
	if got := st.minEvent(st.last()); got != 0 {
		t.Fatalf("minEvent = %d, want 0", got)
	}
	stAppend(t, s, "$$v", expAny, stEvent(metadataEventType, `{"$maxCount":3}`))
	if got := st.minEvent(st.last()); got != 7 {
		t.Fatalf("minEvent with $maxCount 3 = %d, want 7", got)
	}
	stAppend(t, s, "$$v", expAny, stEvent(metadataEventType, `{"$maxCount":3,"$tb":8}`))
	if got := st.minEvent(st.last()); got != 8 {
		t.Fatalf("minEvent with $tb 8 = %d, want 8", got)
	}
	stAppend(t, s, "$$v", expAny, stEvent(metadataEventType, `{"$maxAge":60}`))
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if exp := st.expiredBefore(ticksOf(clock())); st.events[9].created >= exp {
		t.Fatalf("event created %d not expired before %d", st.events[9].created, exp)
	}
	// Metastreams keep only their latest event.
	ms := s.streams["$$v"]
	if got := ms.minEvent(ms.last()); got != ms.last() {
		t.Fatalf("metastream minEvent = %d, want %d", got, ms.last())
	}
}

func TestStoreClosed(t *testing.T) {
	s, err := OpenStore(StoreOptions{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(StreamAppend{Stream: "x", Events: stEvents(1, "E")}); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}
