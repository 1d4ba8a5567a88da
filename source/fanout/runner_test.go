package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// A runner of three projections over the shared read applies each event of their topics once
// per projection, reads each event of the log once, and survives the read's failure (every
// projection resubscribes from its committed state).
func TestRunnerOverSharedRead(t *testing.T) {
	l := projectiontest.NewLog()
	appendMixed(l, 300)
	store := memory.New()
	r := projection.NewRunner(New(l, Options{Topics: allTypes}), store, projection.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, CheckpointEvery: 10 * time.Millisecond})
	counts := map[string][]string{"only-a": {typeA}, "a-and-b": {typeA, typeB}, "only-c": {typeC}}
	for name, topics := range counts {
		p := projection.New[*memory.Tx](name)
		for _, typ := range topics {
			p = p.On(typ, func(_ context.Context, tx *memory.Tx, _ projection.Event) error { tx.Add(name, 1); return nil })
		}
		if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitAll := func() {
		t.Helper()
		head := l.Next() - 1
		for name := range counts {
			wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, err := r.Wait(wctx, name, head)
			wcancel()
			if err != nil {
				t.Fatalf("projection %s: wait for %d: %v (status %+v)", name, head, err, r.Status())
			}
		}
	}
	waitAll()
	if got, want := l.Delivered(), len(l.Events()); got != want {
		t.Errorf("events read from the log = %d, want %d (each once)", got, want)
	}
	l.Drop(errTest)
	appendMixed(l, 100)
	waitAll()
	for name, topics := range counts {
		want := 0
		for _, e := range l.Events() {
			for _, typ := range topics {
				if e.Type == typ {
					want++
				}
			}
		}
		if got := store.Int(name); got != int64(want) {
			t.Errorf("projection %s applied %d events, want %d", name, got, want)
		}
	}
}
