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
	}{
		{"public", "dogs", tracking.State{}},
		{"public", "dogs", tracking.State{Last: tracking.Position{Commit: 120, Prepare: 118}, Checkpoint: 300}},
		{`a "quoted" schema`, "a name with spaces, \"quotes\" and ünïcode", tracking.State{Checkpoint: 7}},
		{"", "max", tracking.State{Last: tracking.Position{Commit: tracking.MaxStorablePosition, Prepare: tracking.MaxStorablePosition}, Checkpoint: tracking.MaxStorablePosition}},
	} {
		payload := encodeNotification(tc.schema, tc.name, tc.s)
		schema, name, s, err := decodeNotification(payload)
		if err != nil || schema != tc.schema || name != tc.name || s != tc.s {
			t.Errorf("decode(encode(%q, %q, %v)) = %q, %q, %v, %v (payload %s)", tc.schema, tc.name, tc.s, schema, name, s, err, payload)
		}
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
	} {
		schema, name, s, err := decodeNotification(tc.payload)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "notification payload") {
			t.Errorf("decode(%q) = %q, %q, %v, %v; want an error containing %q", tc.payload, schema, name, s, err, tc.want)
		}
	}
}

// TestNotificationPayloadWakesListenersOfEarlierVersions: they took the projection's name after
// the first space of the payload.
func TestNotificationPayloadWakesListenersOfEarlierVersions(t *testing.T) {
	payload := encodeNotification("my schema", "dog counts", tracking.State{Last: tracking.Position{Commit: 5, Prepare: 5}})
	if _, name, ok := strings.Cut(payload, " "); !ok || name != "dog counts" {
		t.Errorf("payload %q: an earlier listener reads the projection %q", payload, name)
	}
}
