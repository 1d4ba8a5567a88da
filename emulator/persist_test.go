package emulator

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// snapshot renders every record of a store, for comparing reloads.
func snapshot(s *Store) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, len(s.recs))
	for i, r := range s.recs {
		out[i] = fmt.Sprintf("%d %s@%d %s %s %d %d %q %q", r.pos, r.stream.name, r.number, r.id, r.typ, r.created, r.flags, r.data, r.meta)
	}
	return out
}

func fillPersisted(t *testing.T, s *Store) {
	t.Helper()
	stAppend(t, s, "p-1", expNoStream, stEvents(5, "E")...)
	stAppend(t, s, "$$p-1", expAny, stEvent(metadataEventType, `{"$maxCount":2}`))
	stAppend(t, s, "p-2", expNoStream, ProposedEvent{ID: uuid.New(), Type: "Bin", Data: []byte{0, 1, 2}, Metadata: []byte("m")})
	if _, err := s.Delete("p-2", expAny); err != nil {
		t.Fatal(err)
	}
	stAppend(t, s, "p-3", expNoStream, stEvents(2, "E")...)
	if _, err := s.Tombstone("p-3", expAny); err != nil {
		t.Fatal(err)
	}
	stAppend(t, s, "p-2", expAny, stEvents(1, "Again")...)
	stAppend(t, s, "p-4", expAny, ProposedEvent{ID: uuid.New(), Type: "V2", Data: []byte("d"),
		Metadata: []byte(`{"k":"v"}`), PropertyMetadata: true})
}

func TestPersistenceReloadsEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{DataDir: dir, Secure: true, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	fillPersisted(t, s)
	before := snapshot(s)
	end, _ := s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r := stOpen(t, StoreOptions{DataDir: dir, Secure: true})
	if got := snapshot(r); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("reloaded log differs:\n got %v\nwant %v", got, before)
	}
	if end2, _ := r.Head(); end2 != end {
		t.Fatalf("end offset after reload = %d, want %d", end2, end)
	}
	// Streams, revisions, metadata and deletes are rebuilt.
	if r.streams["p-1"].minEvent(4) != 3 || !r.streams["p-3"].tombstoned() || r.streams["p-2"].last() != 1 ||
		r.streams["p-2"].softDeleted() || r.streams["p-2"].minEvent(1) != 1 {
		t.Fatalf("stream state not rebuilt")
	}
	// Writing continues the numbering and positions; idempotency survives.
	res := stAppend(t, r, "p-1", stRev(4), stEvents(1, "E")...)
	if res.Revision != 5 || res.Position != end {
		t.Fatalf("append after reload = %+v, want revision 5 at %d", res, end)
	}
	evs := r.streams["p-1"].events
	again := stAppend(t, r, "p-1", expAny, ProposedEvent{ID: evs[2].id, Type: "E"})
	if again.Revision != 2 || again.Position != evs[2].pos {
		t.Fatalf("idempotent replay after reload = %+v", again)
	}
	_, err = r.Append(StreamAppend{Stream: "p-3", Events: stEvents(1, "E")})
	stWantDeleted(t, err)
	// No second seed on reopen.
	n := 0
	for _, rec := range r.recs {
		if rec.stream.name == "$$$scavenges" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("$$$scavenges has %d seeds after reload, want 1", n)
	}
}

func TestPersistenceLocksTheLog(t *testing.T) {
	dir := t.TempDir()
	stOpen(t, StoreOptions{DataDir: dir})
	if _, err := OpenStore(StoreOptions{DataDir: dir, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenStore on one data directory: %v, want an in-use error", err)
	}
}

func TestPersistenceOverGRPC(t *testing.T) {
	dir := t.TempDir()
	f := newReadFixture(t, Options{DataDir: dir})
	ctx := rdCtx(t)
	wr, err := f.client.AppendToStream(ctx, "kept", kurrentdb.AppendToStreamOptions{}, testEvents(3, "Kept")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	g := newReadFixture(t, Options{DataDir: dir})
	got, err := g.readStream(t, "kept", kurrentdb.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Event.Position.Commit != wr.CommitPosition || got[2].Event.EventNumber != 2 {
		t.Fatalf("after restart: %d events, last at %v", len(got), got[len(got)-1].Event.Position)
	}
}

func TestPersistenceTruncatesTornTail(t *testing.T) {
	for _, cut := range []int{1, 5, 9, 20} {
		t.Run(fmt.Sprint("cut ", cut), func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenStore(StoreOptions{DataDir: dir, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			stAppend(t, s, "torn", expNoStream, stEvents(3, "E")...)
			before := snapshot(s)
			stAppend(t, s, "torn", stRev(2), stEvent("Lost", `{"x":"`+strings.Repeat("y", 30)+`"}`))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, logFileName)
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// A crash in the middle of the last write.
			if err := os.Truncate(path, info.Size()-int64(cut)); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.InfoLevel)
			r, err := OpenStore(StoreOptions{DataDir: dir, Logger: zap.New(core)})
			if err != nil {
				t.Fatalf("reopen with a torn tail: %v", err)
			}
			defer r.Close()
			if got := snapshot(r); strings.Join(got, "\n") != strings.Join(before, "\n") {
				t.Fatalf("after truncation:\n got %v\nwant %v", got, before)
			}
			if logs.FilterMessageSnippet("torn").Len() != 1 {
				t.Fatalf("no log line about the torn record: %v", logs.All())
			}
			// The log is writable again where the torn record was.
			res := stAppend(t, r, "torn", stRev(2), stEvent("Again", "{}"))
			if res.Revision != 3 {
				t.Fatalf("append after truncation = %+v", res)
			}
		})
	}
}

func TestPersistenceChecksumOfLastRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{DataDir: dir, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	stAppend(t, s, "c", expNoStream, stEvents(2, "E")...)
	before := snapshot(s)
	stAppend(t, s, "c", expAny, stEvent("Flipped", "{}"))
	_ = s.Close()
	path := filepath.Join(dir, logFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0xff // damage inside the last record
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := stOpen(t, StoreOptions{DataDir: dir})
	if got := snapshot(r); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("bad last checksum not truncated:\n got %v\nwant %v", got, before)
	}
}

func TestPersistenceRejectsCorruptionBeforeTheEnd(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{DataDir: dir, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	stAppend(t, s, "c", expNoStream, stEvent("Victim", `{"v":"victim"}`))
	stAppend(t, s, "c", expAny, stEvents(3, "After")...)
	_ = s.Close()
	path := filepath.Join(dir, logFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("victim"))
	data[i] = 'V'
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(StoreOptions{DataDir: dir, Logger: zap.NewNop()})
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenStore on a log corrupt before its end: %v, want a checksum error naming the file", err)
	}
	// Not an emulator log at all.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, logFileName), []byte("definitely not a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(StoreOptions{DataDir: other, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "bad header") {
		t.Fatalf("OpenStore on a foreign file: %v", err)
	}
}

// FuzzLogFile feeds arbitrary bytes to the log loader: it must never panic,
// and must either load or fail with an error (a torn tail is truncated).
func FuzzLogFile(f *testing.F) {
	var seed []byte
	for i, name := range []string{"a", "$$a", "b"} {
		r := &record{pos: uint64(256 + 100*i), number: 0, id: uuid.New(), typ: "E", created: 1, data: []byte(`{}`)}
		payload := encodeRecord(nil, r, name)
		var hdr [frameHeader]byte
		binary.LittleEndian.PutUint32(hdr[0:], uint32(len(payload)))
		binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(payload, crcTable))
		seed = append(append(seed, hdr[:]...), payload...)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add([]byte{})
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, logFileName), append(append([]byte{}, logMagic...), body...), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(StoreOptions{DataDir: dir, Logger: zap.NewNop()})
		if err != nil {
			return
		}
		// Whatever loaded is consistent: positions increase, revisions are dense.
		for i := 1; i < len(s.recs); i++ {
			if s.recs[i].pos <= s.recs[i-1].pos {
				t.Fatalf("positions not increasing after load")
			}
		}
		for _, st := range s.streams {
			for i, r := range st.events {
				if r.number != int64(i) {
					t.Fatalf("stream %s: revision %d at index %d", st.name, r.number, i)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
