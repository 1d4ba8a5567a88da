// Starting a daemon for the read-your-writes rounds: it must not only have processed the log's
// head, but lead every projection on a live subscription, or the first round measures its
// start-up instead of its latency.

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

// StartLiveDaemon starts a daemon on configFile against dbURL and the KurrentDB at kurrentURI
// and returns once every projection of names has processed head and runs live: the daemon
// leads it and its subscription has caught up (see WaitLive). It fails after limit.
//
// Processing head alone does not do: when the projections' tracking rows are already past
// head (a restart on a database that has processed the log), the wait API answers from them
// at once, while the daemon has not yet taken the projections' leadership (a replica waits for
// its second membership heartbeat before it leads anything) nor subscribed.
func StartLiveDaemon(ctx context.Context, bins Binaries, configFile, dbURL, kurrentURI string, names []string, head uint64, limit time.Duration) (*Daemon, error) {
	d, err := StartDaemon(bins, configFile, dbURL, kurrentURI)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	if _, err := d.WaitAll(ctx, names, head, time.Now(), limit); err != nil {
		d.Proc.Kill()
		return nil, err
	}
	if err := d.WaitLive(ctx, names, time.Until(deadline)); err != nil {
		d.Proc.Kill()
		return nil, err
	}
	return d, nil
}

// WaitLive waits, for at most limit, until the daemon reports every projection of names live
// (GET /v1/projections): for a partitioned projection, every partition. It fails at once if the
// daemon exits, and after limit with the states last seen.
func (d *Daemon) WaitLive(ctx context.Context, names []string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	for {
		list, err := d.Projections(ctx)
		if err == nil {
			if last = notLive(list, names); last == "" {
				return nil
			}
		} else {
			last = err.Error()
		}
		if err := d.Proc.Exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the projections were not all live within %v: %s", limit, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Projections returns the daemon's GET /v1/projections.
func (d *Daemon) Projections(ctx context.Context) (httpapi.ListJSON, error) {
	var list httpapi.ListJSON
	u := d.Base + "/v1/projections"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return list, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return list, &unreachableError{err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return list, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return list, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return list, fmt.Errorf("GET %s: %w", u, err)
	}
	return list, nil
}

// notLive says which projections of names list does not show live (with their states), or
// returns "" when all are.
func notLive(list httpapi.ListJSON, names []string) string {
	byName := map[string]httpapi.ProjectionJSON{}
	for _, p := range list.Projections {
		byName[p.Name] = p
	}
	var not []string
	for _, name := range names {
		p, ok := byName[name]
		if !ok {
			not = append(not, name+" absent")
			continue
		}
		for _, u := range units(p) {
			if u.State != projection.StateLive || !u.Leader {
				not = append(not, fmt.Sprintf("%s %s (leader %v)", u.Name, u.State, u.Leader))
			}
		}
	}
	return strings.Join(not, ", ")
}

// units are what runs of projection p: its partitions, or p itself when it has none.
func units(p httpapi.ProjectionJSON) []httpapi.ProjectionJSON {
	if len(p.Partitions) == 0 {
		return []httpapi.ProjectionJSON{p}
	}
	return p.Partitions
}
