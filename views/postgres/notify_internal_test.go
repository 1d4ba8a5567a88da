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
		{"", "is not a tracking state"},
		{"120 dogs", "is not a tracking state"}, // the payload of earlier versions
		{"0 dogs", "is not a tracking state"},
		{`{"schema":"public","projection":"dogs","commit":"12"}`, "is not a tracking state"},
		{`{"schema":"public","projection":"dogs","commit":-1}`, "is not a tracking state"},
		{`{"schema":"public","projection":"dogs","position":12}`, `unknown field "position"`},
		{`{"schema":"public","projection":"dogs"} {}`, "text after the tracking state"},
		{`{"schema":"public","commit":12}`, "the projection name is missing"},
		{`{"schema":"public","projection":"dogs","checkpoint":9223372036854775808}`, "cannot be stored"},
	} {
		schema, name, s, err := decodeNotification(tc.payload)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "notification payload") {
			t.Errorf("decode(%q) = %q, %q, %v, %v; want an error containing %q", tc.payload, schema, name, s, err, tc.want)
		}
	}
}
