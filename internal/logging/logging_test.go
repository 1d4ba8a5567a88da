package logging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/logging"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

func lines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestObserverLinesCarryProjectionAndPosition(t *testing.T) {
	var b bytes.Buffer
	log, err := logging.New(&b, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	o := logging.NewObserver(log)
	st := tracking.State{Last: tracking.Position{Commit: 42, Prepare: 42}}
	for i := 0; i < 100; i++ {
		o.BatchCommitted(projection.CommittedBatch{Projection: "dogs", Events: 10, Duration: time.Millisecond, State: st}) // debug: not at info
	}
	at := st.Reached()
	o.StateChanged(projection.StateChange{Projection: "dogs", From: projection.StateCatchingUp, To: projection.StateLive, Position: at})
	o.Error(projection.Fault{Projection: "dogs", Kind: "source", Err: errors.New("unavailable"), Position: at})
	o.SubscriptionRestarted(projection.Fault{Projection: "dogs", Kind: "subscription", Err: errors.New("unavailable"), Position: at})
	e := projection.Event{ID: "e1", Type: "T", Stream: "s", Revision: 3, Position: tracking.Position{Commit: 50, Prepare: 50}}
	o.EventFailed(projection.FailedEvent{Projection: "dogs", Event: e, Err: errors.New("boom"), Policy: projection.PolicyStop})
	o.EventDeadLettered(projection.FailedEvent{Projection: "dogs", Event: e, Err: errors.New("boom"), Policy: projection.PolicySkip})
	o.StateChanged(projection.StateChange{Projection: "dogs", From: projection.StateLive, To: projection.StateStopped, Err: errors.New("boom"), Position: at})
	ls := lines(t, &b)
	if len(ls) != 6 {
		t.Fatalf("got %d lines at info, want 6 (no line per batch): %s", len(ls), b.String())
	}
	for _, l := range ls {
		if l["projection"] != "dogs" || l["position"] == nil {
			t.Errorf("line without projection and position: %v", l)
		}
	}
	if ls[0]["position"].(float64) != 42 || ls[3]["event_id"] != "e1" || ls[5]["level"] != "error" {
		t.Errorf("lines = %v", ls)
	}
}

func TestDebugLogsBatches(t *testing.T) {
	var b bytes.Buffer
	log, _ := logging.New(&b, "json", "debug")
	logging.NewObserver(log).BatchCommitted(projection.CommittedBatch{Projection: "dogs", Events: 10, Duration: time.Millisecond, State: tracking.State{Checkpoint: 8}})
	ls := lines(t, &b)
	if len(ls) != 1 || ls[0]["events"].(float64) != 10 || ls[0]["position"].(float64) != 7 {
		t.Errorf("lines = %v", ls)
	}
}

func TestConsoleAndBadSettings(t *testing.T) {
	var b bytes.Buffer
	log, err := logging.New(&b, "console", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if s := b.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "WARN\tshown") {
		t.Errorf("console output %q", s)
	}
	if _, err := logging.New(&b, "xml", "info"); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := logging.New(&b, "json", "loud"); err == nil {
		t.Error("level loud accepted")
	}
}

// TestStateChangeMessages checks that each kind of state change has its own message, and that
// the stop line names the poison event and the resume line says whether it was a skip.
func TestStateChangeMessages(t *testing.T) {
	var b bytes.Buffer
	log, _ := logging.New(&b, "json", "info")
	o := logging.NewObserver(log)
	lost := errors.New("lock connection killed")
	poison := &projection.Failure{EventID: "e9", Type: "T", Stream: "s", Revision: 2, Position: tracking.Position{Commit: 90, Prepare: 90}, Error: "boom"}
	change := func(from, to projection.RunState, err error, failed *projection.Failure, cmd projection.Command) func() {
		return func() {
			o.StateChanged(projection.StateChange{Projection: "dogs", From: from, To: to, Err: err, Failed: failed, Command: cmd, Position: 40})
		}
	}
	steps := []struct {
		do   func()
		msg  string
		want map[string]any
	}{
		{change(projection.StateStarting, projection.StateStandby, nil, nil, ""), "projection on standby", nil},
		{change(projection.StateStandby, projection.StateStarting, nil, nil, ""), "leadership acquired", nil},
		{change(projection.StateStarting, projection.StateCatchingUp, nil, nil, ""), "projection state changed", nil},
		{change(projection.StateCatchingUp, projection.StateRetrying, errors.New("unavailable"), nil, ""), "projection retrying",
			map[string]any{"error": "unavailable", "level": "warn"}},
		{change(projection.StateRetrying, projection.StateLive, nil, nil, ""), "projection recovered", nil},
		{change(projection.StateLive, projection.StateStandby, lost, nil, ""), "leadership lost",
			map[string]any{"error": "lock connection killed"}},
		{change(projection.StateLive, projection.StateStandby, fmt.Errorf("assigned to member b: %w", projection.ErrHandedOver), nil, ""), "leadership handed over",
			map[string]any{"reason": "assigned to member b: leadership handed over", "level": "info"}},
		{change(projection.StateLive, projection.StateStopped, errors.New(`projection "dogs": event e9: boom`), poison, ""),
			"projection stopped", map[string]any{"event_id": "e9", "event_type": "T", "stream": "s", "event_position": float64(90), "event_error": "boom", "level": "error"}},
		{change(projection.StateStopped, projection.StateStarting, nil, poison, projection.CommandResume), "projection resumed", map[string]any{"event_id": "e9"}},
		{change(projection.StateStopped, projection.StateStarting, nil, poison, projection.CommandSkip),
			"projection resumed past its poison event (skip)", map[string]any{"event_position": float64(90)}},
	}
	for _, s := range steps {
		b.Reset()
		s.do()
		ls := lines(t, &b)
		l := ls[len(ls)-1]
		if l["msg"] != s.msg || l["projection"] != "dogs" || l["position"] != float64(40) || l["from"] == nil || l["to"] == nil {
			t.Errorf("line = %v, want %q with projection, position, from and to", l, s.msg)
			continue
		}
		for k, v := range s.want {
			if l[k] != v {
				t.Errorf("%q: %s = %v, want %v", s.msg, k, l[k], v)
			}
		}
	}
}
