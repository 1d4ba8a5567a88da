package emulator

// Tests of reading $all: positions, the default filter of system records, large appends
// and server-side filters.

import (
	"strings"
	"testing"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

func TestReadAllPositions(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "a", expNoStream, stEvents(5, "E")...)
	stAppend(t, f.store, "b", expNoStream, stEvents(5, "E")...)
	all := f.readAll(t, kurrentdb.ReadAllOptions{}, 1000)
	if len(all) != len(f.store.recs) {
		t.Fatalf("$all from start has %d events, want %d", len(all), len(f.store.recs))
	}
	if all[0].Event.StreamID != "$$$scavenges" || all[0].Event.EventType != "$metadata" {
		t.Fatalf("first $all event = %s/%s, want the seed", all[0].Event.StreamID, all[0].Event.EventType)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Event.Position.Commit <= all[i-1].Event.Position.Commit {
			t.Fatalf("$all positions not increasing at %d", i)
		}
	}
	// Forwards from P is inclusive.
	p := all[4].Event.Position
	fwd := f.readAll(t, kurrentdb.ReadAllOptions{From: p}, 3)
	if fwd[0].Event.Position != p || fwd[1].Event.Position.Commit <= p.Commit || len(fwd) != 3 {
		t.Fatalf("forwards from %v: %v", p, fwd[0].Event.Position)
	}
	// Backwards from P is exclusive.
	back := f.readAll(t, kurrentdb.ReadAllOptions{From: p, Direction: kurrentdb.Backwards}, 100)
	if len(back) != 4 || back[0].Event.Position != all[3].Event.Position {
		t.Fatalf("backwards from %v: %d events starting %v", p, len(back), back[0].Event.Position)
	}
	back = f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 2)
	if back[0].Event.Position != all[len(all)-1].Event.Position || back[1].Event.Position != all[len(all)-2].Event.Position {
		t.Fatalf("backwards from end starts at %v", back[0].Event.Position)
	}
	if got := f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}}, 10); len(got) != 0 {
		t.Fatalf("forwards from end returned %d events", len(got))
	}
	// Tombstones, soft deletes and metadata events are in $all.
	if _, err := f.store.Delete("a", expAny); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Tombstone("b", expAny); err != nil {
		t.Fatal(err)
	}
	last := f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 2)
	if e := last[0].Event; e.EventType != "$streamDeleted" || e.EventNumber != 1<<63-1 || e.StreamID != "b" {
		t.Fatalf("tombstone in $all = %+v", e)
	}
	if e := last[1].Event; e.EventType != "$metadata" || e.StreamID != "$$a" || string(e.Data) != `{"$tb":9223372036854775807}` {
		t.Fatalf("soft delete in $all = %+v", e)
	}
}

func TestReadAllDefaultFilterHidesSystemRecords(t *testing.T) {
	f := newReadFixture(t, Options{})
	for _, name := range []string{"$epoch-information", "$persistentsubscription-$all::g-checkpoint",
		"$persistentsubscription-$all::g-parked", "$persistentsubscription-s::g-parked", "$ce-x"} {
		stAppend(t, f.store, name, expAny, stEvent("X", "{}"))
	}
	seen := map[string]bool{}
	for _, e := range f.readAll(t, kurrentdb.ReadAllOptions{}, 1000) {
		seen[e.Event.StreamID] = true
	}
	for name, want := range map[string]bool{"$epoch-information": false, "$persistentsubscription-$all::g-checkpoint": false,
		"$persistentsubscription-$all::g-parked": false, "$persistentsubscription-s::g-parked": true, "$ce-x": true} {
		if seen[name] != want {
			t.Fatalf("$all shows %s = %v, want %v", name, seen[name], want)
		}
	}
}

func TestReadAllOneThousandEventAppend(t *testing.T) {
	f := newReadFixture(t, Options{})
	res := stAppend(t, f.store, "thousand", expNoStream, stEvents(1000, "E")...)
	back := f.readAll(t, kurrentdb.ReadAllOptions{From: kurrentdb.End{}, Direction: kurrentdb.Backwards}, 1000)
	if len(back) != 1000 || back[0].Event.Position.Commit != res.Position || back[999].Event.EventNumber != 0 {
		t.Fatalf("backwards read of a 1000-event append: %d events", len(back))
	}
}

// Raw request builders for what the official client cannot express.

func TestReadAllFiltered(t *testing.T) {
	f := newReadFixture(t, Options{})
	stAppend(t, f.store, "order-1", expNoStream, stEvent("OrderPlaced", "{}"), stEvent("OrderSnapshot", "{}"), stEvent("OrderShipped", "{}"))
	stAppend(t, f.store, "cust-1", expNoStream, stEvent("CustomerCreated", "{}"))
	cases := []struct {
		name   string
		filter *streams.ReadReq_Options_FilterOptions
		want   []string
	}{
		{"lookahead excludes system and snapshots", rdTypeRegex(`^(?!(\$.+$|.*Snapshot$))`),
			[]string{"OrderPlaced", "OrderShipped", "CustomerCreated"}},
		{"unanchored search", rdTypeRegex(`Ship`), []string{"OrderShipped"}},
		{"type prefixes", &streams.ReadReq_Options_FilterOptions{
			Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{
				Prefix: []string{"Customer", "OrderP"}}},
			Window: &streams.ReadReq_Options_FilterOptions_Max{Max: 5}, CheckpointIntervalMultiplier: 1},
			[]string{"OrderPlaced", "CustomerCreated"}},
		{"stream regex", &streams.ReadReq_Options_FilterOptions{
			Filter: &streams.ReadReq_Options_FilterOptions_StreamIdentifier{StreamIdentifier: &streams.ReadReq_Options_FilterOptions_Expression{
				Regex: `^cust-\d+$`}},
			Window: &streams.ReadReq_Options_FilterOptions_Count{}, CheckpointIntervalMultiplier: 1},
			[]string{"CustomerCreated"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := f.raw.Read(rdCtx(t), rdAllReq(100, tc.filter))
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := rdRecvAll(t, rc)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				ev := m.GetEvent()
				if ev == nil {
					t.Fatalf("finite filtered read sent %T", m.Content)
				}
				got = append(got, ev.Event.Metadata["type"])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
