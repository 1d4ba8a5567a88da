package daemon

import (
	"context"
	"sync"

	"github.com/projector-dev/projector/internal/httpapi"
)

// DeadLetterStore gives the HTTP API its dead-letter tools and the projector_dead_letters
// gauge its counts (internal/deadletters.Service).
type DeadLetterStore interface {
	httpapi.DeadLetters
	// Count returns how many dead letters each projection has.
	Count(ctx context.Context) (map[string]int64, error)
}

// historySampler runs the status page's History until the daemon shuts down.
type historySampler struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// operatorSurface sets up what the status page and the dead-letter tools need: the history
// the page charts (sampled until Shutdown), the dead-letter gauge, and the options the HTTP API
// takes for them.
func (d *Daemon) operatorSurface(o Options, api *httpapi.Options) {
	hist := httpapi.NewHistory(d.prov, httpapi.HistoryOptions{Processed: d.m.Processed})
	ctx, cancel := context.WithCancel(context.Background())
	d.hist = &historySampler{stop: cancel}
	d.hist.wg.Go(func() { hist.Run(ctx) })
	api.History = hist
	if o.DeadLetters != nil {
		api.DeadLetters = o.DeadLetters
		d.m.CountDeadLetters(d.prov, o.DeadLetters.Count)
	}
}

// stopHistory ends the history's sampling and waits for it.
func (d *Daemon) stopHistory() {
	if d.hist != nil {
		d.hist.stop()
		d.hist.wg.Wait()
	}
}
