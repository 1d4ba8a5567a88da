package postgres

import (
	"strings"
	"testing"

	"github.com/projector-dev/projector/tracking"
)

func TestNotificationPayloadRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		schema, name string
		s            tracking.State
		generation   uint64
	}{
		{"public", "dogs", tracking.State{}, 0},
		{"public", "dogs", tracking.State{Last: tracking.Position{Commit: 120, Prepare: 118}, Checkpoint: 300}, 3},
		{`a "quoted" schema`, "a name with spaces, \"quotes\" and ünïcode", tracking.State{Checkpoint: 7}, 1},
		{"", "max", tracking.State{Last: tracking.Position{Commit: tracking.MaxStorablePosition, Prepare: tracking.MaxStorablePosition}, Checkpoint: tracking.MaxStorablePosition}, tracking.MaxStorablePosition},
	} {
		payload := encodeNotification(tc.schema, tc.name, tc.s, tc.generation)
		n, err := decodeNotification(payload)
		if err != nil || n.schema != tc.schema || n.projection != tc.name || n.state != tc.s || n.generation != tc.generation || !n.generational {
			t.Errorf("decode(encode(%q, %q, %v, %d)) = %+v, %v (payload %s)", tc.schema, tc.name, tc.s, tc.generation, n, err, payload)
		}
	}
}

// TestNotificationPayloadOfTheVersionBeforeGenerationsIsOfUnknownGeneration: its state is
// decoded, marked as of no known generation (the listener reads the row instead).
func TestNotificationPayloadOfTheVersionBeforeGenerationsIsOfUnknownGeneration(t *testing.T) {
	n, err := decodeNotification(`{"schema":"public","commit":120,"prepare":118,"checkpoint":0} dogs`)
	want := tracking.State{Last: tracking.Position{Commit: 120, Prepare: 118}}
	if err != nil || n.schema != "public" || n.projection != "dogs" || n.state != want || n.generational {
		t.Errorf("decode(payload without a generation) = %+v, %v; want %v of no known generation", n, err, want)
	}
}

func TestMalformedNotificationPayloadsAreRefusedNamingTheFault(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{"", "want a tracking state, a space and the projection's name"},
		{`{"schema":"public","commit":12}`, "want a tracking state, a space and the projection's name"},
		{`{"schema":"public","commit":12} `, "want a tracking state, a space and the projection's name"},
		{"120 dogs", `"120" is not a tracking state`}, // the payload of earlier versions
		{"0 dogs", `"0" is not a tracking state`},
		{`{"schema":"public","commit":"12"} dogs`, "is not a tracking state"},
		{`{"schema":"public","commit":-1} dogs`, "is not a tracking state"},
		{`{"schema":"public","position":12} dogs`, `unknown field "position"`},
		{`{"schema":"public"}{} dogs`, "text after the tracking state"},
		{`{"schema":"public","checkpoint":9223372036854775808} dogs`, "cannot be stored"},
		{`{"schema":"public","generation":-1} dogs`, "is not a tracking state"},
	} {
		n, err := decodeNotification(tc.payload)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "notification payload") {
			t.Errorf("decode(%q) = %+v, %v; want an error containing %q", tc.payload, n, err, tc.want)
		}
	}
}

// TestNotificationPayloadWakesListenersOfEarlierVersions: they took the projection's name after
// the first space of the payload.
func TestNotificationPayloadWakesListenersOfEarlierVersions(t *testing.T) {
	payload := encodeNotification("my schema", "dog counts", tracking.State{Last: tracking.Position{Commit: 5, Prepare: 5}}, 2)
	if _, name, ok := strings.Cut(payload, " "); !ok || name != "dog counts" {
		t.Errorf("payload %q: an earlier listener reads the projection %q", payload, name)
	}
}
