package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/postgres"
)

func (a *app) runCommand() *cobra.Command {
	var noMigrate bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon",
		Long: `Runs the projections of the projections file: validates it (exit 2 on any problem, before a
single event is consumed), connects to PostgreSQL and KurrentDB (retrying with backoff while they
are unreachable), applies the migrations and schemas (unless --no-migrate), prepares every handler
statement, then projects until SIGTERM or SIGINT, when it finishes or rolls back the batch in
flight and exits 0. HTTP on PROJECTOR_HTTP_ADDR serves /metrics, /healthz, /readyz,
/v1/projections and /v1/projections/{name}/wait from the start.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd.Context(), !noMigrate)
		},
	}
	cmd.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply migrations and schemas at start (run `projector migrate` separately)")
	return cmd
}

func (a *app) run(ctx context.Context, doMigrate bool) error {
	log, err := a.logger()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.settings.Validate(true, true); err != nil {
		return err
	}
	// Check the KurrentDB settings now; connect once PostgreSQL is ready.
	probe, err := a.kurrentClient()
	if err != nil {
		return err
	}
	_ = probe.Close()

	names := make([]string, len(cfg.Projections))
	for i, p := range cfg.Projections {
		names[i] = p.Name
	}
	d, err := daemon.Start(log, a.settings.HTTPAddr, names)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = d.Shutdown(sctx)
	}()

	pool, err := a.openDB(ctx, log, true)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer pool.Close()
	if err := checkSQL(ctx, pool, cfg); err != nil {
		return err
	}
	store := postgres.New(pool, postgres.Options{})
	defer store.Close()
	if doMigrate {
		err := daemon.Retry(ctx, log, "apply migrations", 500*time.Millisecond, 30*time.Second, func(ctx context.Context) error {
			return migrate(ctx, pool, store, cfg, log)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	var kurrentErr atomic.Pointer[error]
	pending := errors.New("KurrentDB: connecting")
	kurrentErr.Store(&pending)
	d.AddCheck(func(context.Context) error { return *kurrentErr.Load() })
	client, err := a.connectKurrent(ctx, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	src := newRenewingSource(client, a.kurrentClient, log)
	defer func() { _ = src.Close() }()
	var none error
	kurrentErr.Store(&none)
	var projections []daemon.Projection[pgx.Tx]
	for _, p := range cfg.Projections {
		projections = append(projections, daemon.Projection[pgx.Tx]{Projection: p.Compiled, Options: runOptions(p)})
	}
	return daemon.Run(ctx, d, daemon.Config[pgx.Tx]{
		Source: src, Header: src, Store: store, Waiter: store, Leader: postgres.NewElector(pool.Config().ConnConfig, postgres.ElectorOptions{}),
		Projections: projections,
		Checks: []func(context.Context) error{func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("PostgreSQL: %w", err)
			}
			return nil
		}},
	})
}

// kurrentClient makes the KurrentDB client the settings describe; it connects lazily.
func (a *app) kurrentClient() (*kurrentdb.Client, error) {
	pem, err := a.settings.RootCertificatesPEM()
	if err != nil {
		return nil, err
	}
	c, err := kurrent.NewClient(a.settings.KurrentDBURI, kurrent.ClientOptions{RootCertificates: string(pem)})
	if err != nil {
		return nil, &config.Error{File: config.EnvKurrentDBURI, Msg: err.Error()}
	}
	return c, nil
}

// connectKurrent makes a KurrentDB client and reads the head of $all with it, retrying with a
// new client and backoff (logged) until that succeeds or ctx ends: a client whose first
// discovery fails does not recover, so an unreachable server at start needs fresh clients.
func (a *app) connectKurrent(ctx context.Context, log *zap.Logger) (*kurrentdb.Client, error) {
	var client *kurrentdb.Client
	err := daemon.Retry(ctx, log, "connect to KurrentDB", 500*time.Millisecond, 10*time.Second, func(ctx context.Context) error {
		c, err := a.kurrentClient()
		if err != nil {
			return err
		}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, _, err := kurrent.New(c, kurrent.Options{}).Head(hctx); err != nil {
			_ = c.Close()
			return fmt.Errorf("KurrentDB: %w", err)
		}
		client = c
		return nil
	})
	return client, err
}

// readHead reads the head of $all once.
func (a *app) readHead(ctx context.Context) (uint64, bool, error) {
	c, err := a.kurrentClient()
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pos, _, err := kurrent.New(c, kurrent.Options{}).Head(ctx)
	if err != nil {
		return 0, false, err
	}
	return pos.Commit, true, nil
}

// runOptions maps a projection's configuration to the runner's options.
func runOptions(p config.Projection) projection.ProjectionOptions {
	o := projection.ProjectionOptions{
		BatchSize:     p.Batch.Size,
		BatchInterval: p.Batch.Interval,
		OnError: projection.ErrorPolicy{
			Kind:       projection.PolicyKind(p.OnError.Policy),
			Retries:    p.OnError.Retries,
			MinBackoff: p.OnError.Backoff,
			MaxBackoff: max(p.OnError.Backoff, projection.DefaultMaxBackoff),
		},
	}
	switch p.Start.Kind {
	case config.StartEnd:
		o.Start = projection.Start{Kind: projection.StartEnd}
	case config.StartPosition:
		o.Start = projection.Start{Kind: projection.StartAfter, Position: projection.Position{Commit: p.Start.Position, Prepare: p.Start.Position}}
	}
	return o
}
