// projector migrate, reset and wait: the commands that work on the database and the wait API.

package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create Projector's tables and each projection's schema",
		Long: `Applies Projector's own migrations (tracking and dead-letter tables) and the schema of every
projection in the projections file, then prepares every handler statement to check it. It is
idempotent and safe to run from several replicas at once. An unreachable PostgreSQL is retried.
A projection whose definition differs from the version serving its tables keeps its tables as
they are: the daemon deals with the change at start (see its on_change key).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log, cfg, err := a.loggerAndConfig()
			if err != nil {
				return err
			}
			pool, store, closeDB, err := a.openStore(ctx, log, true)
			if err != nil {
				return err
			}
			defer closeDB()
			if err := checkSQL(ctx, pool, cfg); err != nil {
				return err
			}
			if err := migrate(ctx, pool, store, cfg, log); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "migrated: Projector's tables and %d projection schema(s)\n", len(cfg.Projections))
			return nil
		},
	}
}

func (a *app) resetCommand() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "reset NAME",
		Short: "Empty a projection's view and rewind it, so it rebuilds",
		Long: `Empties the projection's view (its reset SQL) and rewinds its tracking to its configured start
in one transaction, so the projection rebuilds. With a daemon running, reset asks it
(--server, by default the local PROJECTOR_HTTP_ADDR) to do so online: the replica that leads
the projection pauses it, resets, and rebuilds it from its start while the other projections go
on (a standby refuses: give --server the leader's address). When no daemon answers, reset runs
the reset SQL and deletes the tracking row itself, under the projection's leadership lock; it
refuses (exit 1) when a replica still leads the projection.`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log, cfg, err := a.loggerAndConfig()
			if err != nil {
				return err
			}
			p, err := findProjection(cfg, args[0])
			if err != nil {
				return err
			}
			if server == "" {
				server = localURL(a.settings.HTTPAddr)
			}
			if fetchDaemon(ctx, server) != nil {
				token, err := a.settings.Admin()
				if err != nil {
					return err
				}
				st, err := sendCommand(ctx, server, "reset", p.Name, token)
				var ue usageError
				switch {
				case errors.As(err, &ue):
					return err
				case err != nil:
					return &exitError{code: exitFailure, err: err}
				}
				log.Info("projection reset by the daemon", zap.String("projection", p.Name), zap.String("server", server))
				fmt.Fprintf(a.stdout, "reset %s online: it rebuilds from its start (now %s at position %d)\n", p.Name, st.State, st.Position)
				return nil
			}
			_, store, closeDB, err := a.openStore(ctx, log, false)
			if err != nil {
				return err
			}
			defer closeDB()
			before, err := resetProjection(ctx, store, p)
			if err != nil {
				return err
			}
			log.Info("projection reset", zap.String("projection", p.Name), zap.Uint64("position", before.Reached()))
			fmt.Fprintf(a.stdout, "reset %s (was at position %d); it rebuilds from its start\n", p.Name, before.Reached())
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "URL of a running daemon's HTTP API (default: the local PROJECTOR_HTTP_ADDR)")
	a.adminTokenFlags(cmd, "the daemon's admin token, sent as a bearer token")
	return cmd
}

// resetProjection empties p's view and deletes its tracking row in one transaction, under the
// projection's leadership lock (see postgres.Store.Rewind), and returns the state it had.
func resetProjection(ctx context.Context, store *postgres.Store, p *config.Projection) (tracking.State, error) {
	before, err := store.Rewind(ctx, p.Name, tracking.State{}, p.Compiled.ResetView)
	if errors.Is(err, postgres.ErrLeaderActive) {
		return before, fmt.Errorf("projection %q is being run by a projector daemon (it holds the projection's leadership lock); stop every replica, reset, then start them again: %w", p.Name, err)
	}
	return before, err
}

func findProjection(cfg *config.Config, name string) (*config.Projection, error) {
	var names []string
	for i := range cfg.Projections {
		if cfg.Projections[i].Name == name {
			return &cfg.Projections[i], nil
		}
		names = append(names, cfg.Projections[i].Name)
	}
	return nil, usageError{fmt.Errorf("no projection %q in %s (it has %s)", name, cfg.File, strings.Join(names, ", "))}
}

func (a *app) waitCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait NAME POSITION",
		Short: "Wait until a projection has processed a commit position",
		Long: `Blocks until projection NAME has processed commit position POSITION (read from PostgreSQL, so
it works against any replica), then prints the position reached and exits 0. Exits 1 when the
timeout passes first, 2 on bad arguments.`,
		Args: exactArgs(2, "NAME POSITION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			pos, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return usageError{fmt.Errorf("POSITION %q is not a commit position (a whole number)", args[1])}
			}
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: must be positive", timeout)}
			}
			log, err := a.logger()
			if err != nil {
				return err
			}
			if a.settings.ConfigFile != "" {
				cfg, err := a.loadConfig()
				if err != nil {
					return err
				}
				if _, err := findProjection(cfg, name); err != nil {
					return err
				}
			}
			_, store, closeDB, err := a.openStore(ctx, log, false)
			if err != nil {
				return err
			}
			defer closeDB()
			if err := servingPartitions(ctx, store, name); err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := store.Wait(wctx, name, pos)
			switch {
			case err == nil:
				fmt.Fprintf(a.stdout, "%s processed %d (at %d)\n", name, pos, st.Reached())
				return nil
			case errors.Is(err, context.DeadlineExceeded):
				return &exitError{code: exitFailure, err: fmt.Errorf("timed out after %s: %s is at %d, not yet at %d", timeout, name, st.Reached(), pos)}
			default:
				return err
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait")
	return cmd
}
