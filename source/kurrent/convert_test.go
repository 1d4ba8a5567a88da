package kurrent

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/projection"
)

func recorded(i int) *kurrentdb.RecordedEvent {
	return &kurrentdb.RecordedEvent{
		EventID: uuid.New(), EventType: "__main__:Dog.TrickAdded", ContentType: "application/octet-stream",
		StreamID: "6ee3ee5f-8a4a-5b8c-9b8e-7a4ad2b33f0c", EventNumber: uint64(i),
		Position:    kurrentdb.Position{Commit: uint64(1000 + 100*i), Prepare: uint64(999 + 100*i)},
		CreatedDate: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600)), Data: []byte(`{"trick":"roll over"}`),
		UserMetadata: []byte(`{"by":"me"}`),
	}
}

// Every field converts, and the IDs of events converted earlier, whose memory a block shares
// with later ones, stay as they were.
func TestConvertKeepsEveryFieldAndEveryEarlierID(t *testing.T) {
	var c converter
	n := 3*idsPerBlock + 5
	recs := make([]*kurrentdb.RecordedEvent, n)
	evs := make([]projection.Event, n)
	for i := range recs {
		recs[i] = recorded(i)
		evs[i] = c.event(recs[i])
	}
	recs[0].EventID = uuid.MustParse("0123abcd-ef01-4567-89ab-cdef01234567")
	if got := c.event(recs[0]).ID; got != "0123abcd-ef01-4567-89ab-cdef01234567" {
		t.Errorf("ID = %s, want the canonical form 0123abcd-ef01-4567-89ab-cdef01234567", got)
	}
	for i, r := range recs[1:] {
		e := evs[i+1]
		if e.ID != r.EventID.String() {
			t.Fatalf("event %d: ID %s, want %s", i+1, e.ID, r.EventID)
		}
		if e.Type != r.EventType || e.Stream != r.StreamID || e.Revision != r.EventNumber || e.ContentType != r.ContentType ||
			e.Position.Commit != r.Position.Commit || e.Position.Prepare != r.Position.Prepare ||
			!e.Created.Equal(r.CreatedDate) || e.Created.Location() != time.UTC ||
			string(e.Data) != string(r.Data) || string(e.Metadata) != string(r.UserMetadata) {
			t.Fatalf("event %d = %+v, want the fields of %+v", i+1, e, r)
		}
	}
}

// BenchmarkConvert measures the conversion of the client's recorded event into a projection
// event, per event.
func BenchmarkConvert(b *testing.B) {
	evs := make([]*kurrentdb.RecordedEvent, 1024)
	for i := range evs {
		evs[i] = recorded(i)
	}
	var c converter
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := c.event(evs[i%len(evs)])
		if e.Revision != evs[i%len(evs)].EventNumber {
			b.Fatal("wrong event")
		}
		i++
	}
}
