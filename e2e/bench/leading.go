package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

// WaitLeading polls the daemon's status (GET /v1/projections, every 5 ms) until it leads every
// projection of names and reads its events (catching up or live, every partition of a
// partitioned one), and returns when that was, measured from since: the daemon's start-up
// (connecting, the schema, leadership from its second membership heartbeat). The ceiling's
// replay starts its clock at the same point, once it leads. It fails at once if the daemon
// exits, and after limit.
func (d *Daemon) WaitLeading(ctx context.Context, names []string, since time.Time, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := "no status yet"
	for {
		list, err := d.Projections(ctx)
		if err == nil {
			if last = notLeading(list, names); last == "" {
				return time.Since(since), nil
			}
		}
		if err := d.Proc.Exited(); err != nil {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("the daemon did not lead every projection within %v: %s", limit, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// notLeading says which projections of names list does not show read by their leader (with
// their states), or returns "" when all are.
func notLeading(list httpapi.ListJSON, names []string) string {
	byName := map[string]httpapi.ProjectionJSON{}
	for _, p := range list.Projections {
		byName[p.Name] = p
	}
	for _, name := range names {
		p, ok := byName[name]
		if !ok {
			return name + " absent"
		}
		for _, q := range units(p) {
			if q.State == projection.StateStarting || q.State == projection.StateStandby || q.State == "" {
				return fmt.Sprintf("%s %s", q.Name, q.State)
			}
		}
	}
	return ""
}
