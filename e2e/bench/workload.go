package bench

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/projection"
)

// Topics of the events the training school's projections ignore: invoices of another
// aggregate, written in the same shape.
const (
	TopicInvoiceIssued = "__main__:Invoice.Issued"
	TopicLineAdded     = "__main__:Invoice.LineAdded"
	invoiceTopic       = "__main__:Invoice"
)

// contentType is the content type eventsourcing-kurrentdb stores events with.
const contentType = "application/octet-stream"

// baseTime is the timestamp of the first generated event; each next one is a millisecond later.
var baseTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Workload is the training school's event log: dogs registered with their tricks, one stream
// per dog, interleaved with invoices (events of other types) in streams of their own.
type Workload struct {
	// Events is the number of events of the log.
	Events int
	// OtherShare is the share of Events that are invoice events, which the training
	// school's projections ignore (0 ≤ OtherShare < 1).
	OtherShare float64
	// MaxTricks bounds the tricks of one dog: dog i has i mod (MaxTricks+1).
	MaxTricks int
	// InvoiceLines is the number of lines of an invoice: each invoice append is one Issued
	// event and InvoiceLines LineAdded events (the last invoice may have fewer).
	InvoiceLines int
}

// Validate reports a workload that cannot be generated.
func (w Workload) Validate() error {
	switch {
	case w.Events < 2:
		return fmt.Errorf("events: %d; want at least 2", w.Events)
	case w.OtherShare < 0 || w.OtherShare >= 1:
		return fmt.Errorf("other share: %v; want 0 ≤ share < 1", w.OtherShare)
	case w.MaxTricks < 0:
		return fmt.Errorf("max tricks: %d; want ≥ 0", w.MaxTricks)
	case w.InvoiceLines < 0:
		return fmt.Errorf("invoice lines: %d; want ≥ 0", w.InvoiceLines)
	}
	return nil
}

// Event is one generated event.
type Event struct {
	ID       uuid.UUID
	Type     string
	Revision uint64
	Data     []byte // compact JSON, keys sorted, as the eventsourcing JSON transcoder writes
	Created  time.Time
}

// Append is the events of one append to one stream, which does not exist before it.
type Append struct {
	Stream string
	Events []Event
}

// Counts are the numbers of events of each kind in a log.
type Counts struct {
	Registered int64 // __main__:Dog.Registered
	Tricks     int64 // __main__:Dog.TrickAdded
	Other      int64 // every other type
}

// Total is the number of events counted.
func (c Counts) Total() int64 { return c.Registered + c.Tricks + c.Other }

// Add counts e.
func (c *Counts) Add(eventType string) {
	switch eventType {
	case trainingschool.TopicDogRegistered:
		c.Registered++
	case trainingschool.TopicTrickAdded:
		c.Tricks++
	default:
		c.Other++
	}
}

// Appends calls fn with every append of the log, in order, until fn returns false. The last
// append is always a dog's, so the log ends with an event the training school's projections
// handle. The log is the same on every call.
func (w Workload) Appends(fn func(Append) bool) {
	other := int(float64(w.Events) * w.OtherShare)
	dogEvents := w.Events - other
	g := generator{}
	dogsDone, otherDone := 0, 0
	for dog, invoice := 0, 0; dogsDone < dogEvents || otherDone < other; {
		dogN := min(1+dog%(w.MaxTricks+1), dogEvents-dogsDone)
		// Invoices keep their share of what was written so far, and go before the last dog:
		// the log ends with a dog's append.
		lastDog := dogN == dogEvents-dogsDone
		writeOther := otherDone < other && (lastDog || otherDone*dogEvents <= dogsDone*other)
		var a Append
		if writeOther {
			n := min(w.InvoiceLines+1, other-otherDone)
			a = g.invoice(invoice, n)
			invoice++
			otherDone += n
		} else {
			a = g.dog(fmt.Sprintf("dog-%d", dog), dogN)
			dog++
			dogsDone += dogN
		}
		if !fn(a) {
			return
		}
	}
}

// Counts returns the numbers of events of each kind in the log.
func (w Workload) Counts() Counts {
	var c Counts
	w.Appends(func(a Append) bool {
		for _, e := range a.Events {
			c.Add(e.Type)
		}
		return true
	})
	return c
}

// generator numbers the events of a log: ids and timestamps follow the order of generation.
// Generators of different idSpace give different ids.
type generator struct {
	seq     uint64
	idSpace byte
}

func (g *generator) next(typ string, revision uint64, data map[string]any) Event {
	created := baseTime.Add(time.Duration(g.seq) * time.Millisecond)
	data["timestamp"] = map[string]string{"_type_": "datetime_iso", "_data_": created.Format("2006-01-02T15:04:05.000000+00:00")}
	b, err := json.Marshal(data)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	id := uuid.UUID{0: g.idSpace}
	binary.BigEndian.PutUint64(id[8:], g.seq)
	id[6] = 0x40 // version 4
	id[8] |= 0x80
	g.seq++
	return Event{ID: id, Type: typ, Revision: revision, Data: b, Created: created}
}

// dog is the append of the dog called name: its registration and n-1 tricks.
func (g *generator) dog(name string, n int) Append {
	a := Append{Stream: trainingschool.DogID(name).String(), Events: make([]Event, 0, n)}
	a.Events = append(a.Events, g.next(trainingschool.TopicDogRegistered, 0, map[string]any{"originator_topic": "__main__:Dog", "name": name}))
	for r := 1; r < n; r++ {
		a.Events = append(a.Events, g.next(trainingschool.TopicTrickAdded, uint64(r), map[string]any{"trick": fmt.Sprintf("trick %d", r)}))
	}
	return a
}

// invoice is the append of invoice i: its issue and n-1 lines.
func (g *generator) invoice(i, n int) Append {
	id := uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "/invoices/%d", i))
	a := Append{Stream: id.String(), Events: make([]Event, 0, n)}
	a.Events = append(a.Events, g.next(TopicInvoiceIssued, 0, map[string]any{"originator_topic": invoiceTopic, "number": fmt.Sprintf("INV-%d", i)}))
	for r := 1; r < n; r++ {
		a.Events = append(a.Events, g.next(TopicLineAdded, uint64(r), map[string]any{"item": fmt.Sprintf("lesson %d", r), "amount": map[string]string{"_type_": "decimal_str", "_data_": "25.00"}}))
	}
	return a
}

// ProjectionEvent is e of stream as a projection sees it, at the given $all position.
func (e Event) ProjectionEvent(stream string, pos projection.Position) projection.Event {
	return projection.Event{
		ID: e.ID.String(), Type: e.Type, Stream: stream, Revision: e.Revision, Position: pos,
		Data: e.Data, Metadata: []byte{}, ContentType: contentType, Created: e.Created,
	}
}
