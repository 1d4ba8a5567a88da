package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/versioning"
	"github.com/projector-dev/projector/views/postgres"
)

func (a *app) rebuildCommand() *cobra.Command {
	var cancel, watch bool
	var server string
	cmd := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a projection's serving definition in a shadow schema, then swap it in",
		Long: `Records a new build of the projection's serving definition. The daemon replica that leads it
builds it in a shadow schema from the projection's start while the serving tables stay live,
and swaps the built tables in once they have caught up (the serving ones go to an archive
schema, for projector rollback). Running daemons pick the build up within a second; without
one, it starts with the next daemon. It refuses (exit 2) a definition that names schemas
explicitly, or live tables that views or foreign keys of other relations depend on. With
--cancel, it abandons the version building instead (a changed definition whose build fails, say):
its shadow schema is dropped and the daemons stop building it. With --watch, it then follows the
build until the swap (or Ctrl-C, which stops the watch, not the build): a progress bar of the
version building towards the serving version's position, its events per second and ETA, redrawn
every second on a terminal and a line per second otherwise, and a last line once it is swapped in.`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if watch && cancel {
				return usageError{errors.New("--watch and --cancel cannot be combined: there is no build to follow once abandoned")}
			}
			o, err := a.openProjection(ctx, args[0])
			if err != nil {
				return err
			}
			defer o.close()
			log, cfg, p, store := o.log, o.cfg, o.p, o.store
			if cancel {
				id, err := versioning.Cancel(ctx, store, p.Name)
				switch {
				case err != nil:
					return err
				case id == "":
					fmt.Fprintf(a.stdout, "no version of %s is building\n", p.Name)
				default:
					log.Info("build abandoned", zap.String("projection", p.Name), zap.String("version", id))
					fmt.Fprintf(a.stdout, "abandoned version %s of %s\n", id, p.Name)
				}
				return nil
			}
			id, err := versioning.Rebuild(ctx, store, cfg.File, p)
			if err != nil {
				return err
			}
			log.Info("rebuild recorded", zap.String("projection", p.Name), zap.String("version", id))
			fmt.Fprintf(a.stdout, "rebuilding %s as version %s in schema %s; the daemon swaps it in once it has caught up\n",
				p.Name, id, postgres.ShadowSchema(p.Name, id))
			if !watch {
				return nil
			}
			if server == "" {
				server = localURL(a.settings.HTTPAddr)
			}
			return a.watchRebuild(ctx, log, cfg, store, server, p.Name, id)
		},
	}
	cmd.Flags().BoolVar(&cancel, "cancel", false, "abandon the version building instead")
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the build until the swap, with its progress, events/s and ETA")
	cmd.Flags().StringVar(&server, "server", "", "with --watch, URL of a running daemon's HTTP API (default: the local PROJECTOR_HTTP_ADDR)")
	return cmd
}

func (a *app) rollbackCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME",
		Short: "Swap the previous version of a projection back in",
		Long: `Swaps the most recently archived version of the projection (the one a rebuild's swap replaced)
back in for the serving version, in one transaction, as the swap did: readers see the serving
tables up to its commit and the previous version's after it. The version swapped back catches
up from its own position; the version it replaces is archived, so a second rollback swaps it
back again. Running daemons serve the restored version within a second, from its stored
definition, even while their projections file holds the newer one.`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o, err := a.openProjection(ctx, args[0])
			if err != nil {
				return err
			}
			defer o.close()
			log, p, store := o.log, o.p, o.store
			v, done, err := versioning.Rollback(ctx, store, p.Name)
			if err != nil {
				return err
			}
			log.Info("rolled back", zap.String("projection", p.Name), zap.String("version", v.ID), zap.Duration("readers_blocked", done.Blocked))
			fmt.Fprintf(a.stdout, "rolled %s back to version %s (at position %d; it catches up from there); readers waited at most %s\n",
				p.Name, v.ID, done.State.Reached(), done.Blocked)
			return nil
		},
	}
}

// versionCommands takes the daemon's rebuild and rollback commands once the store is open;
// until then they answer 503, as the other commands do.
type versionCommands struct {
	config *config.Config
	mu     sync.Mutex
	store  *postgres.Store
}

func (v *versionCommands) set(store *postgres.Store) {
	v.mu.Lock()
	v.store = store
	v.mu.Unlock()
}

func (v *versionCommands) commands(verb, name string) (versioning.Commands, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.store == nil {
		return versioning.Commands{}, fmt.Errorf("%s %q: still connecting to PostgreSQL: %w", verb, name, httpapi.ErrUnavailable)
	}
	return versioning.Commands{Store: v.store, Config: v.config}, nil
}

// Rebuild implements httpapi.Versioner.
func (v *versionCommands) Rebuild(ctx context.Context, name string) error {
	c, err := v.commands("rebuild", name)
	if err != nil {
		return err
	}
	return c.Rebuild(ctx, name)
}

// Rollback implements httpapi.Versioner.
func (v *versionCommands) Rollback(ctx context.Context, name string) error {
	c, err := v.commands("rollback", name)
	if err != nil {
		return err
	}
	return c.Rollback(ctx, name)
}

// storedRebuild returns the version of projection name building, as PostgreSQL records it
// (nil when none builds): its position against the serving position serving, without the
// speed, which only the daemon that builds it knows.
func storedRebuild(ctx context.Context, store *postgres.Store, name string, serving uint64) (*httpapi.RebuildJSON, error) {
	vs, err := store.Versions(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.State != postgres.Building {
			continue
		}
		st, _, err := store.Load(ctx, postgres.VersionTracking(name, v.ID))
		if err != nil {
			return nil, err
		}
		return &httpapi.RebuildJSON{Version: v.ID, ShadowSchema: postgres.ShadowSchema(name, v.ID), Position: st.Reached(), ServingPosition: serving}, nil
	}
	return nil, nil
}

// describeRebuild says how far a version building has got, for projector status.
func describeRebuild(r httpapi.RebuildJSON) string {
	s := fmt.Sprintf("building version %s in schema %s: at position %d of the serving version's %d", r.Version, r.ShadowSchema, r.Position, r.ServingPosition)
	if r.EventsPerSecond > 0 {
		s += fmt.Sprintf(", %.0f events/s", r.EventsPerSecond)
	}
	if r.ETASeconds != nil {
		s += fmt.Sprintf(", about %s to go", (time.Duration(*r.ETASeconds) * time.Second).Round(time.Second))
	}
	return s
}
