package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/projector-dev/projector/examples/trainingschool"
)

func appendsOf(w Workload) []Append {
	var as []Append
	w.Appends(func(a Append) bool { as = append(as, a); return true })
	return as
}

func TestWorkloadHasTheRequestedEventsAndShare(t *testing.T) {
	for _, w := range []Workload{
		{Events: 1000, OtherShare: 0.1, MaxTricks: 8, InvoiceLines: 99},
		{Events: 12345, OtherShare: 0.25, MaxTricks: 3, InvoiceLines: 10},
		{Events: 2, OtherShare: 0, MaxTricks: 0, InvoiceLines: 0},
		{Events: 7, OtherShare: 0.5, MaxTricks: 8, InvoiceLines: 99},
	} {
		c := w.Counts()
		if c.Total() != int64(w.Events) {
			t.Errorf("%+v: %d events, want %d", w, c.Total(), w.Events)
		}
		if want := int64(float64(w.Events) * w.OtherShare); c.Other != want {
			t.Errorf("%+v: %d other events, want %d", w, c.Other, want)
		}
		if c.Registered == 0 {
			t.Errorf("%+v: no dog registered", w)
		}
	}
}

func TestWorkloadEndsWithADogAndInterleavesInvoices(t *testing.T) {
	w := Workload{Events: 5000, OtherShare: 0.2, MaxTricks: 8, InvoiceLines: 49}
	as := appendsOf(w)
	if got := as[len(as)-1].Events[0].Type; got != trainingschool.TopicDogRegistered {
		t.Fatalf("the last append starts with %q, want a dog's registration", got)
	}
	// Invoices are spread over the log, not all at one end.
	firstHalf := 0
	for _, a := range as[:len(as)/2] {
		if a.Events[0].Type == TopicInvoiceIssued {
			firstHalf++
		}
	}
	if firstHalf == 0 {
		t.Error("no invoice in the first half of the log")
	}
}

func TestWorkloadEventsAreShapedAsEventsourcingWritesThem(t *testing.T) {
	w := Workload{Events: 3000, OtherShare: 0.1, MaxTricks: 8, InvoiceLines: 99}
	streams := map[string]bool{}
	ids := map[string]bool{}
	for _, a := range appendsOf(w) {
		if streams[a.Stream] {
			t.Fatalf("stream %s appended to twice", a.Stream)
		}
		streams[a.Stream] = true
		for i, e := range a.Events {
			if e.Revision != uint64(i) {
				t.Fatalf("stream %s: event %d has revision %d", a.Stream, i, e.Revision)
			}
			if ids[e.ID.String()] {
				t.Fatalf("event id %s given twice", e.ID)
			}
			ids[e.ID.String()] = true
			var data map[string]any
			if err := json.Unmarshal(e.Data, &data); err != nil {
				t.Fatalf("data %s: %v", e.Data, err)
			}
			var compact bytes.Buffer
			_ = json.Compact(&compact, e.Data)
			if compact.String() != string(e.Data) {
				t.Fatalf("data is not compact JSON: %s", e.Data)
			}
			ts, _ := data["timestamp"].(map[string]any)
			if ts["_type_"] != "datetime_iso" {
				t.Fatalf("timestamp is not eventsourcing's datetime: %s", e.Data)
			}
			switch e.Type {
			case trainingschool.TopicDogRegistered:
				name, _ := data["name"].(string)
				if i != 0 || trainingschool.DogID(name).String() != a.Stream {
					t.Fatalf("registration %d of stream %s names dog %q", i, a.Stream, name)
				}
			case trainingschool.TopicTrickAdded:
				if i == 0 || !strings.HasPrefix(data["trick"].(string), "trick ") {
					t.Fatalf("trick %d: %s", i, e.Data)
				}
			case TopicInvoiceIssued, TopicLineAdded:
			default:
				t.Fatalf("unexpected type %q", e.Type)
			}
		}
	}
}

func TestWorkloadIsTheSameOnEveryCall(t *testing.T) {
	w := Workload{Events: 2000, OtherShare: 0.1, MaxTricks: 8, InvoiceLines: 99}
	a, b := appendsOf(w), appendsOf(w)
	if len(a) != len(b) {
		t.Fatalf("%d appends, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Stream != b[i].Stream || len(a[i].Events) != len(b[i].Events) || !bytes.Equal(a[i].Events[0].Data, b[i].Events[0].Data) || a[i].Events[0].ID != b[i].Events[0].ID {
			t.Fatalf("append %d differs between calls", i)
		}
	}
}

func TestWorkloadValidate(t *testing.T) {
	for _, tc := range []struct {
		w    Workload
		want string
	}{
		{Workload{Events: 1}, "events: 1"},
		{Workload{Events: 10, OtherShare: 1}, "other share: 1"},
		{Workload{Events: 10, OtherShare: -0.1}, "other share: -0.1"},
		{Workload{Events: 10, MaxTricks: -1}, "max tricks: -1"},
		{Workload{Events: 10, InvoiceLines: -2}, "invoice lines: -2"},
	} {
		err := tc.w.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.w, err, tc.want)
		}
	}
	if err := (Workload{Events: 10, OtherShare: 0.5, MaxTricks: 2, InvoiceLines: 3}).Validate(); err != nil {
		t.Errorf("a valid workload: %v", err)
	}
}

func TestReplayEventsKeepTheTopicsInLogOrder(t *testing.T) {
	w := Workload{Events: 4000, OtherShare: 0.3, MaxTricks: 8, InvoiceLines: 99}
	topics := map[string]bool{trainingschool.TopicDogRegistered: true, trainingschool.TopicTrickAdded: true}
	events := ReplayEvents(w, topics)
	c := w.Counts()
	if got := CountEvents(events); got != (Counts{Registered: c.Registered, Tricks: c.Tricks}) {
		t.Fatalf("replayed %+v, the log has %+v", got, c)
	}
	for i, e := range events {
		if i > 0 && e.Position.Commit <= events[i-1].Position.Commit {
			t.Fatalf("event %d at %v, after %v", i, e.Position, events[i-1].Position)
		}
		if e.ContentType != "application/octet-stream" || len(e.Metadata) != 0 {
			t.Fatalf("event %d: content type %q, metadata %q", i, e.ContentType, e.Metadata)
		}
	}
	// The last event of the log is a dog's: its position is the log's length.
	if last := events[len(events)-1].Position.Commit; last != uint64(w.Events)*positionStep {
		t.Errorf("last replayed event at %d, want %d", last, uint64(w.Events)*positionStep)
	}
}
