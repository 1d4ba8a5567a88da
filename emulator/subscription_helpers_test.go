package emulator

// Helpers of the subscription tests: subscription messages in a compact, comparable form,
// read from the official client or from a raw filtered subscription.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// subMsg is one subscription message in a compact, comparable form.
type subMsg struct {
	kind   string // "event", "checkpoint", "caughtup", "dropped"
	typ    string
	stream string
	rev    uint64
	pos    uint64
	hasPos bool // caught-up: a revision or position was given
	err    error
}

func (m subMsg) String() string {
	switch m.kind {
	case "event":
		return fmt.Sprintf("event(%s/%s@%d p%d)", m.stream, m.typ, m.rev, m.pos)
	case "dropped":
		return fmt.Sprintf("dropped(%v)", m.err)
	default:
		return fmt.Sprintf("%s(%d,%v)", m.kind, m.pos, m.hasPos)
	}
}

// next receives one message from an official-client subscription.
func next(t *testing.T, sub *kurrentdb.Subscription) subMsg {
	t.Helper()
	e := sub.Recv()
	switch {
	case e.EventAppeared != nil:
		ev := e.EventAppeared.OriginalEvent()
		return subMsg{kind: "event", typ: ev.EventType, stream: ev.StreamID, rev: ev.EventNumber, pos: ev.Position.Commit}
	case e.CheckPointReached != nil:
		if e.CheckPointReached.Commit != e.CheckPointReached.Prepare {
			t.Fatalf("checkpoint commit %d != prepare %d", e.CheckPointReached.Commit, e.CheckPointReached.Prepare)
		}
		return subMsg{kind: "checkpoint", pos: e.CheckPointReached.Commit}
	case e.CaughtUp != nil:
		if e.CaughtUp.Date.IsZero() || time.Since(e.CaughtUp.Date) > time.Minute {
			t.Fatalf("caught-up timestamp %v", e.CaughtUp.Date)
		}
		m := subMsg{kind: "caughtup"}
		if e.CaughtUp.StreamRevision != nil {
			m.pos, m.hasPos = *e.CaughtUp.StreamRevision, true
		} else if e.CaughtUp.Position != nil {
			m.pos, m.hasPos = e.CaughtUp.Position.Commit, true
		}
		return m
	case e.SubscriptionDropped != nil:
		return subMsg{kind: "dropped", err: e.SubscriptionDropped.Error}
	}
	t.Fatalf("unexpected subscription event %+v", e)
	return subMsg{}
}

// until receives messages up to and including the first of kind.
func until(t *testing.T, sub *kurrentdb.Subscription, kind string) []subMsg {
	t.Helper()
	var out []subMsg
	for {
		m := next(t, sub)
		out = append(out, m)
		if m.kind == kind {
			return out
		}
		if m.kind == "dropped" {
			t.Fatalf("subscription dropped waiting for %s: %v (after %v)", kind, m.err, out)
		}
	}
}

func expect(t *testing.T, got subMsg, kind string, pos uint64, hasPos bool) {
	t.Helper()
	if got.kind != kind || got.pos != pos || got.hasPos != hasPos {
		t.Fatalf("got %v, want %s(%d,%v)", got, kind, pos, hasPos)
	}
}

// rdFilteredSub subscribes to $all with a raw request: filter on event type
// prefix, window max, and multiplier.
func rdFilteredSub(t *testing.T, ctx context.Context, f *readFixture, prefix string, window, multiplier uint32) streams.Streams_ReadClient {
	t.Helper()
	req := rdAllReq(0, &streams.ReadReq_Options_FilterOptions{
		Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{
			Prefix: []string{prefix}}},
		Window:                       &streams.ReadReq_Options_FilterOptions_Max{Max: window},
		CheckpointIntervalMultiplier: multiplier,
	})
	req.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	return rdSubscribe(t, ctx, f, req)
}

// rawMsg converts a raw ReadResp to a subMsg.
func rawMsg(t *testing.T, rc streams.Streams_ReadClient) subMsg {
	t.Helper()
	m, err := rc.Recv()
	if err != nil {
		return subMsg{kind: "dropped", err: err}
	}
	switch c := m.Content.(type) {
	case *streams.ReadResp_Event:
		ev := c.Event.GetEvent()
		return subMsg{kind: "event", typ: ev.Metadata["type"], stream: string(ev.StreamIdentifier.StreamName), rev: ev.StreamRevision, pos: ev.CommitPosition}
	case *streams.ReadResp_Checkpoint_:
		if c.Checkpoint.Timestamp == nil {
			t.Fatalf("checkpoint without timestamp")
		}
		return subMsg{kind: "checkpoint", pos: c.Checkpoint.CommitPosition}
	case *streams.ReadResp_CaughtUp_:
		return subMsg{kind: "caughtup", pos: c.CaughtUp.GetPosition().GetCommitPosition(), hasPos: c.CaughtUp.Position != nil}
	}
	t.Fatalf("unexpected message %T", m.Content)
	return subMsg{}
}
