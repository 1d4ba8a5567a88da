package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/deadletters"
	"github.com/projector-dev/projector/internal/redact"
	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/internal/versioning"
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
flight (within --drain-timeout, then it rolls it back) and exits 0. HTTP on PROJECTOR_HTTP_ADDR
serves the status page at /, /metrics, /healthz, /readyz, /v1/projections,
/v1/projections/{name}/wait, /v1/history, /v1/dead-letters and the commands (POST
/v1/projections/{name}/resume, .../skip, .../reset, .../rebuild, .../rollback,
.../dead-letters/replay, .../dead-letters/purge) from the start. The commands
need an admin token (--admin-token, --admin-token-file): with one they require it as a bearer
token and refuse requests from browser pages of another origin; without one they are disabled
(403), and the start log says so.

A projection whose definition differs from the version serving its tables follows its on_change
key: rebuild (the default) builds the new version in a shadow schema while the serving version
stays live and swaps it in once it has caught up; fail exits 2; continue adopts it from the
current position.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd.Context(), !noMigrate)
		},
	}
	cmd.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply migrations and schemas at start (run projector migrate separately)")
	a.envFlag(cmd.Flags(), "drain-timeout", "on SIGTERM, how long the batch in flight may take to commit before it is rolled back")
	a.envFlag(cmd.Flags(), "max-waits", "how many wait requests the HTTP API serves at once; beyond it they answer 503 with Retry-After")
	a.envFlag(cmd.Flags(), "member-id", "this replica's id among the replicas that share the projections (default: host name and process id)")
	a.envFlag(cmd.Flags(), "shared-read", "on (default): the projections share their reads of $all; off: each reads on its own subscription")
	a.envFlag(cmd.Flags(), "pprof-addr", "listen address of Go's runtime profiles (/debug/pprof/) for go tool pprof; empty (default): not served")
	a.adminTokenFlags(cmd, "the bearer token the commands (resume, skip, reset) require; without one they are disabled")
	return cmd
}

func (a *app) run(ctx context.Context, doMigrate bool) error {
	log, cfg, err := a.loggerAndConfig()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if err := a.settings.Validate(true, true); err != nil {
		return err
	}
	drain, err := a.settings.Drain()
	if err != nil {
		return err
	}
	token, err := a.settings.Admin()
	if err != nil {
		return err
	}
	// Check the KurrentDB settings now; connect once PostgreSQL is ready.
	probe, err := a.dialKurrent()
	if err != nil {
		return err
	}
	_ = probe.Close()

	names := make([]string, len(cfg.Projections))
	for i, p := range cfg.Projections {
		names[i] = p.Name
	}
	maxWaits, err := a.settings.Waits()
	if err != nil {
		return err
	}
	sharedRead, err := a.settings.SharesReads()
	if err != nil {
		return err
	}
	tuneGC(a.lookup)
	spans, err := tracing.FromEnv(ctx, func(k string) string { v, _ := a.lookup(k); return v }, a.stdout)
	if err != nil {
		return err
	}
	defer shutdownTracing(ctx, log, spans)
	member, err := a.settings.Member(os.Hostname, os.Getpid())
	if err != nil {
		return err
	}
	commands := &versionCommands{config: cfg}
	deadLetters := deadletters.New()
	// The profiles listen before the API: once the API answers, they do too.
	if addr := a.settings.PprofAddr; addr != "" {
		profiles, err := daemon.ListenProfiles(addr)
		if err != nil {
			return fmt.Errorf("profiling listener (%s): %w", config.EnvPprofAddr, err)
		}
		defer shutdownServer(ctx, profiles)
		log.Info("Go runtime profiles served under /debug/pprof/ (go tool pprof reads them); let only operators reach this address",
			zap.String("addr", profiles.Addr()))
	}
	d, err := daemon.Start(log, a.settings.HTTPAddr, names, daemon.Options{AdminToken: token, MaxWaits: maxWaits, Versions: commands, DeadLetters: deadLetters, Tracing: spans})
	if err != nil {
		return err
	}
	defer shutdownServer(ctx, d)

	pool, store, closeDB, err := a.openStore(ctx, log, true)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer closeDB()
	commands.set(store)
	if err := versioning.Precheck(ctx, store, cfg); err != nil {
		return err
	}
	if err := checkSQL(ctx, pool, cfg); err != nil {
		return err
	}
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
	entries, err := versioning.Plan(ctx, store, cfg, log)
	if err != nil {
		return err
	}
	var kurrentErr atomic.Pointer[error]
	pending := errors.New("KurrentDB: connecting")
	kurrentErr.Store(&pending)
	d.AddCheck(func(context.Context) error { return *kurrentErr.Load() })
	src, err := a.connectKurrent(ctx, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() { _ = src.Close() }()
	var none error
	kurrentErr.Store(&none)
	group, err := postgres.NewMembership(pool, member, leaseNames(entries), postgres.MembershipOptions{})
	if err != nil {
		return err
	}
	defer runMembership(ctx, log, group)()
	checks := []func(context.Context) error{func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		return nil
	}}
	// Each generation runs the projections' current versions; a swap, a rollback or a rebuild
	// restarts the projection it is about, with its versions as they are then (or, when that
	// fails, ends the generation, and the next one runs all the versions as they are then).
	for first := true; ; first = false {
		if !first {
			if entries, err = versioning.Plan(ctx, store, cfg, log); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		gen, projections, err := versioning.New(ctx, store, entries, src, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d.SetRebuilds(gen.Rebuilds)
		gctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			gen.Watch(gctx)
		}()
		// Dead letters are replayed under the lease the runner holds for their projection,
		// through the handlers of the version serving it.
		// Leadership is shared among the replicas (a version building goes with its projection).
		leases := deadletters.NewLeases(postgres.NewBalancer(postgres.NewElector(pool.Config().ConnConfig, postgres.ElectorOptions{}), group))
		deadLetters.Connect(store, gen.Handlers(), leases)
		// A version change restarts only its projection, with the versions planned again.
		gen.Replan = func(ctx context.Context) ([]versioning.Entry, error) { return versioning.Plan(ctx, store, cfg, log) }
		gen.Handled = func(handlers []projection.Projection[pgx.Tx]) { deadLetters.Connect(store, handlers, leases) }
		err = daemon.Run(ctx, d, daemon.Config[pgx.Tx]{
			Source: src, Header: src, Store: store, Waiter: store, Leader: leases, Group: group,
			SeparateReads: !sharedRead,
			Projections:   projections,
			Checks:        checks,
			RunnerOptions: projection.Options{DrainTimeout: drain, Observer: gen},
			Running:       gen.Running,
			Live:          gen.Live,
			Restart:       gen.Restart(),
		})
		cancel()
		<-watched
		if err != nil || ctx.Err() != nil {
			return err
		}
		checks = nil // added once
	}
}

// leaseNames are the units of work the replicas share: each projection, or each partition of
// a partitioned one, as the serving version runs it and as the projections file defines it
// (which a build in progress serves once swapped in).
func leaseNames(entries []versioning.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, versioning.TrackingNames(e.Name, e.Serving)...)
		out = append(out, versioning.TrackingNames(e.Name, e.Project.Definition())...)
	}
	return out
}

// runMembership heartbeats group's member until ctx ends or the function it returns is called
// (then it deletes the member's row, and the function returns), logging failed heartbeats.
func runMembership(ctx context.Context, log *zap.Logger, group *postgres.Membership) (stop func()) {
	log.Info("joining the replicas that share the projections", zap.String("member", group.ID()))
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		group.Run(ctx, func(err error) {
			if err != nil {
				log.Warn("membership heartbeat failed; retrying", zap.String("member", group.ID()), zap.Error(err))
				return
			}
			log.Info("membership heartbeat recovered", zap.String("member", group.ID()))
		})
	}()
	return func() { cancel(); <-done }
}

// shutdownServer stops an HTTP server (the daemon's, the profiling listener), giving it five
// seconds even when ctx has ended.
func shutdownServer(ctx context.Context, s interface{ Shutdown(context.Context) error }) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.Shutdown(sctx)
}

// shutdownTracing exports the spans tracing still holds, giving it five seconds even when ctx
// has ended.
func shutdownTracing(ctx context.Context, log *zap.Logger, t *tracing.Tracing) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(sctx); err != nil {
		log.Warn("cannot export the last spans", zap.Error(err))
	}
}

// dialKurrent makes the KurrentDB source the settings describe. It connects lazily, and
// replaces its client whenever the client gives up reconnecting, so it outlives outages of
// any length.
func (a *app) dialKurrent() (*kurrent.Source, error) {
	pem, err := a.settings.RootCertificatesPEM()
	if err != nil {
		return nil, err
	}
	src, err := kurrent.Dial(a.settings.KurrentDBURI, kurrent.ClientOptions{RootCertificates: string(pem)}, kurrent.Options{})
	if err != nil {
		return nil, &config.Error{File: config.EnvKurrentDBURI, Msg: redact.Error(err, a.settings.KurrentDBURI).Error()}
	}
	return src, nil
}

// connectKurrent dials KurrentDB and reads the head of $all, retrying with backoff (logged)
// until that succeeds or ctx ends.
func (a *app) connectKurrent(ctx context.Context, log *zap.Logger) (*kurrent.Source, error) {
	src, err := a.dialKurrent()
	if err != nil {
		return nil, err
	}
	err = daemon.Retry(ctx, log, "connect to KurrentDB", 500*time.Millisecond, 10*time.Second, func(ctx context.Context) error {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, _, err := src.Head(hctx); err != nil {
			return fmt.Errorf("KurrentDB: %w", redact.Error(err, a.settings.KurrentDBURI))
		}
		return nil
	})
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	return src, nil
}

// readHead reads the head of $all once.
func (a *app) readHead(ctx context.Context) (uint64, bool, error) {
	src, err := a.dialKurrent()
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = src.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pos, _, err := src.Head(ctx)
	if err != nil {
		return 0, false, redact.Error(err, a.settings.KurrentDBURI)
	}
	return pos.Commit, true, nil
}
