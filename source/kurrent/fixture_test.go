package kurrent_test

// The fixture of the source's tests: an emulator with a client and a Source on it, the event
// types written, and a helper that drains a subscription.

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
)

const (
	registered = "__main__:Dog.Registered"
	trick      = "__main__:Dog.TrickAdded"
	decoy      = "__main__:DogXRegistered" // matched by an unescaped "^A|B$" filter
)

type fixture struct {
	srv    *emulator.Server
	client *kurrentdb.Client
	src    *kurrent.Source
}

func newFixture(t *testing.T, opts kurrent.Options) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	client, err := kurrent.NewClient(srv.URI(), kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return &fixture{srv: srv, client: client, src: kurrent.New(client, opts)}
}

func (f *fixture) append(t *testing.T, stream, typ string, data string) tracking.Position {
	t.Helper()
	ev := kurrentdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: kurrentdb.ContentTypeBinary, Data: []byte(data)}
	r, err := f.client.AppendToStream(context.Background(), stream, kurrentdb.AppendToStreamOptions{}, ev)
	for try := 0; err != nil && try < 20; try++ {
		// The client answers Unavailable once after a server restart, then reconnects; the
		// event id makes the retry idempotent.
		time.Sleep(50 * time.Millisecond)
		r, err = f.client.AppendToStream(context.Background(), stream, kurrentdb.AppendToStreamOptions{}, ev)
	}
	if err != nil {
		t.Fatalf("append %s to %s: %v", typ, stream, err)
	}
	return tracking.Position{Commit: r.CommitPosition, Prepare: r.PreparePosition}
}

// drain reads sub until it has caught up, returning the events and the last checkpoint.
func drain(t *testing.T, sub projection.Subscription) (events []projection.Event, checkpoint uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (after %d events)", err, len(events))
		}
		switch m.Kind {
		case projection.EventMessage:
			events = append(events, m.Event)
		case projection.CheckpointMessage:
			if m.Checkpoint < checkpoint {
				t.Errorf("checkpoint went back from %d to %d", checkpoint, m.Checkpoint)
			}
			checkpoint = m.Checkpoint
		case projection.CaughtUpMessage:
			return events, checkpoint
		}
	}
}
