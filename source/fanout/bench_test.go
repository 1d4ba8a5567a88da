package fanout

import (
	"context"
	"fmt"
	"testing"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
)

// BenchmarkRead measures reading the events of a log through n subscriptions, each of its own
// (own) or sharing one read (shared): the shared read's overhead per event and subscriber, over
// an in-memory source that decodes nothing.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{1, 3} {
		for _, shared := range []bool{false, true} {
			name := fmt.Sprintf("subscribers=%d/own", n)
			if shared {
				name = fmt.Sprintf("subscribers=%d/shared", n)
			}
			b.Run(name, func(b *testing.B) {
				l := projectiontest.NewLog()
				for i := range b.N {
					l.Append("s", typeA, []byte{byte(i)})
				}
				var src projection.Source = l
				if shared {
					src = New(l, Options{Topics: []string{typeA}})
				}
				b.ResetTimer()
				errs := make(chan error, n)
				for range n {
					go func() { errs <- readEvents(src, b.N) }()
				}
				for range n {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// readEvents subscribes to src and reads n events.
func readEvents(src projection.Source, n int) error {
	ctx := context.Background()
	sub, err := src.Subscribe(ctx, []string{typeA}, tracking.State{})
	if err != nil {
		return err
	}
	defer sub.Close()
	for got := 0; got < n; {
		m, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		if m.Kind == projection.EventMessage {
			got++
		}
	}
	return nil
}
