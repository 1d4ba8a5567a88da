// projector rebuild NAME --watch: the build followed from its acceptance to its swap, with the
// status --watch table of the projection and its version building.

package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/views/postgres"
)

// watchRebuild draws the progress of version id of projection name every watchInterval (from
// the daemon at server when it answers, from PostgreSQL otherwise) until it is swapped in, then
// says so. Ctrl-C (ctx ending) stops the watch, not the build. A version that stops building
// without serving (abandoned, replaced by a newer definition) is an error.
func (a *app) watchRebuild(ctx context.Context, log *zap.Logger, cfg *config.Config, store *postgres.Store, server, name, id string) error {
	scr := newScreen(a.stdout, "projector rebuild "+name+" --watch")
	defer scr.close()
	rates := newRates()
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		state, err := versionStateOf(ctx, store, name, id)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		switch state {
		case postgres.Serving:
			st, _, err := store.Load(ctx, name)
			if err != nil {
				return fmt.Errorf("rebuild %s --watch: %w", name, err)
			}
			scr.close()
			fmt.Fprintf(a.stdout, "swapped in version %s of %s at position %d\n", id, name, st.Reached())
			return nil
		case postgres.Building:
		default:
			return fmt.Errorf("rebuild %s --watch: version %s is no longer building (state %q): abandoned, or replaced by a newer definition", name, id, orNone(state))
		}
		live := fetchDaemon(ctx, server)
		var processed map[string]float64
		if live != nil {
			processed = fetchProcessed(ctx, server)
		}
		out, err := a.statusReport(ctx, log, cfg, store, live)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		now := time.Now()
		if err := scr.draw(now, rates.update(now, onlyProjection(out, name), processed), live != nil); err != nil {
			return fmt.Errorf("rebuild %s --watch: write: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// versionStateOf returns the state of version id of projection name ("" when it is not
// recorded: abandoned).
func versionStateOf(ctx context.Context, store *postgres.Store, name, id string) (postgres.VersionState, error) {
	vs, err := store.Versions(ctx, name)
	if err != nil {
		return "", fmt.Errorf("rebuild %s --watch: %w", name, err)
	}
	for _, v := range vs {
		if v.ID == id {
			return v.State, nil
		}
	}
	return "", nil
}

func orNone(s postgres.VersionState) string {
	if s == "" {
		return "none"
	}
	return string(s)
}

// onlyProjection is out with the entry of projection name alone.
func onlyProjection(out httpapi.ListJSON, name string) httpapi.ListJSON {
	only := httpapi.ListJSON{Head: out.Head}
	for _, p := range out.Projections {
		if p.Name == name {
			only.Projections = append(only.Projections, p)
		}
	}
	return only
}
