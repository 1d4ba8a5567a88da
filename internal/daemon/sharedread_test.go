package daemon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// The projections of a daemon share one read of the log by default (once they have started, one
// subscription of the source is open); with SeparateReads each has its own subscription. Either way every projection applies its events.
func TestDaemonProjectionsShareOneRead(t *testing.T) {
	for _, separate := range []bool{false, true} {
		t.Run(fmt.Sprintf("separate=%v", separate), func(t *testing.T) {
			topics := map[string][]string{"dogs": {tracedTopic}, "tricks": {"__main__:Dog.TrickAdded"}, "both": {tracedTopic, "__main__:Dog.TrickAdded"}}
			log := projectiontest.NewLog()
			for i := range 90 {
				log.Append(fmt.Sprintf("dog-%d", i%9), topics["both"][i%2], nil)
			}
			names := []string{"dogs", "tricks", "both"}
			d, err := daemon.Start(zap.NewNop(), "127.0.0.1:0", names, daemon.Options{})
			if err != nil {
				t.Fatal(err)
			}
			store := memory.New()
			var ps []daemon.Projection[*memory.Tx]
			for _, name := range names {
				p := projection.New[*memory.Tx](name)
				for _, typ := range topics[name] {
					p = p.On(typ, func(_ context.Context, tx *memory.Tx, _ projection.Event) error { tx.Add(name, 1); return nil })
				}
				ps = append(ps, daemon.Projection[*memory.Tx]{Projection: p})
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- daemon.Run(ctx, d, daemon.Config[*memory.Tx]{Source: log, Header: log, Store: store, Projections: ps, SeparateReads: separate})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
				_ = d.Shutdown(context.Background())
			}()
			want := map[string]int64{"dogs": 45, "tricks": 45, "both": 90}
			poll.Until(t, 15*time.Second, "every projection applied its events", func() bool {
				for name, n := range want {
					if store.Int(name) != n {
						return false
					}
				}
				return true
			})
			reads := 1
			if separate {
				reads = len(names)
			}
			poll.Until(t, 15*time.Second, fmt.Sprintf("%d open subscriptions of the log", reads), func() bool { return log.Subscriptions() == reads })
		})
	}
}
