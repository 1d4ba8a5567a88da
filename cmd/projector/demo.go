package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/examples"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/memory"
	"github.com/projector-dev/projector/views/postgres"
)

func (a *app) demoCommand() *cobra.Command {
	var exit bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the training-school walkthrough on an in-process KurrentDB emulator",
		Long: `Starts the KurrentDB emulator in this process, writes the training-school events of the Python
eventsourcing-kurrentdb README (Fido registered, tricks added) exactly as that package writes them,
and runs the dog/trick count projection: into memory by default, or, when DATABASE_URL is set, the
declarative examples/dog_counts.yaml into PostgreSQL (the demo resets that projection first). It
prints the counts, adds a trick, waits for it through the HTTP wait API, prints the counts again,
and keeps serving /metrics until interrupted (--exit stops after the walkthrough). Its daemon
takes commands with a random admin token, printed with a command that resets the projection.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.demo(cmd.Context(), exit) },
	}
	cmd.Flags().BoolVar(&exit, "exit", false, "exit after the walkthrough instead of serving until interrupted")
	return cmd
}

// counter reads the dog and trick counts of the demo's view.
type counter func(ctx context.Context) (dogs, tricks int64, err error)

func (a *app) demo(ctx context.Context, exit bool) error {
	if err := a.settings.Validate(false, false); err != nil {
		return err
	}
	// The demo's own logs are quiet unless asked for: its story goes to stdout.
	level := a.settings.LogLevel
	if level == config.DefaultLogLevel {
		level = "warn"
	}
	a.settings.LogLevel = level
	if a.settings.LogFormat == config.DefaultLogFormat {
		a.settings.LogFormat = "console"
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	out := a.stdout

	em, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		return fmt.Errorf("start the KurrentDB emulator: %w", err)
	}
	defer func() { _ = em.Close() }()
	client, err := kurrent.NewClient(em.URI(), kurrent.ClientOptions{})
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	src := kurrent.New(client, kurrent.Options{})

	// The demo's daemon takes commands with a token of its own, printed below.
	token, err := randomToken()
	if err != nil {
		return err
	}
	maxWaits, err := a.settings.Waits()
	if err != nil {
		return err
	}
	dopts := daemon.Options{AdminToken: token, MaxWaits: maxWaits}
	d, err := daemon.Start(log, a.settings.HTTPAddr, []string{"dog_counts"}, dopts)
	if errors.Is(err, syscall.EADDRINUSE) && a.settings.HTTPAddr == config.DefaultHTTPAddr {
		// The default port is taken: the walkthrough does not need that one.
		d, err = daemon.Start(log, "127.0.0.1:0", []string{"dog_counts"}, dopts)
	}
	if err != nil {
		return err
	}
	defer shutdownServer(ctx, d)
	base := localURL(d.Addr())

	runCtx, stopRunner := context.WithCancel(ctx)
	defer stopRunner()
	runDone := make(chan error, 1)
	var count counter
	view := "memory"
	if a.settings.DatabaseURL == "" {
		store := memory.New()
		count = func(context.Context) (int64, int64, error) { return store.Int("dogs"), store.Int("tricks"), nil }
		go func() {
			runDone <- daemon.Run(runCtx, d, daemon.Config[*memory.Tx]{
				Source: src, Header: src, Store: store,
				Projections: []daemon.Projection[*memory.Tx]{{Projection: countProjection{}, Reset: countProjection{}.Reset}},
			})
		}()
	} else {
		pool, store, closeDB, cfg, err := a.demoPostgres(ctx, log)
		if err != nil {
			return err
		}
		defer closeDB()
		view = "PostgreSQL (examples/" + examples.DogCounts + ")"
		count = func(ctx context.Context) (int64, int64, error) { return pgCounts(ctx, pool) }
		go func() {
			runDone <- daemon.Run(runCtx, d, daemon.Config[pgx.Tx]{
				Source: src, Header: src, Store: store, Waiter: store,
				Projections: []daemon.Projection[pgx.Tx]{{Projection: cfg.Projections[0].Compiled.Runnable(), Options: cfg.Projections[0].Options}},
			})
		}()
	}
	stop := func() error {
		stopRunner()
		return <-runDone
	}

	fmt.Fprintf(out, "Projector demo\n  KurrentDB emulator: %s\n  view:               %s\n  HTTP:               %s\n  status page:        %s/\n\n", em.URI(), view, base, base)
	if err := a.walkthrough(ctx, trainingschool.NewSchool(client), base, count); err != nil {
		return errors.Join(err, stop())
	}
	if exit {
		return stop()
	}
	fmt.Fprintf(out, "\nstatus page: open %s/ in a browser\nserving %s/metrics, %s/v1/projections and the wait API; Ctrl-C to stop\n", base, base, base)
	fmt.Fprintf(out, "admin token (random, for this run): %s\nrebuild the view with it:\n  %s\n", token, resetExample(base, token))
	<-ctx.Done()
	return stop()
}

// randomToken returns a random admin token: 32 random bytes, hex-encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make the demo's admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// resetExample is the command that resets the demo's projection through the daemon at base
// with the admin token.
func resetExample(base, token string) string {
	return fmt.Sprintf("curl -X POST -H 'Authorization: Bearer %s' %s/v1/projections/dog_counts/reset", token, base)
}

// walkthrough writes Fido's registration and tricks through sch, showing the counts through
// the wait API at base after the first three events and again after a fourth.
func (a *app) walkthrough(ctx context.Context, sch *trainingschool.School, base string, count counter) error {
	if _, err := sch.Register(ctx, "Fido"); err != nil {
		return err
	}
	if _, err := sch.AddTrick(ctx, "Fido", "roll over"); err != nil {
		return err
	}
	last, err := sch.AddTrick(ctx, "Fido", "play dead")
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote   Dog.Registered (Fido), Dog.TrickAdded (roll over), Dog.TrickAdded (play dead); last position %d\n", last)
	if err := a.demoStep(ctx, base, last, count); err != nil {
		return err
	}
	pos, err := sch.AddTrick(ctx, "Fido", "sit and stay")
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nwrote   Dog.TrickAdded (sit and stay) at position %d\n", pos)
	return a.demoStep(ctx, base, pos, count)
}

// demoStep waits for position through the wait API, then prints the counts.
func (a *app) demoStep(ctx context.Context, base string, position uint64, count counter) error {
	u := fmt.Sprintf("%s/v1/projections/dog_counts/wait?position=%d&timeout=30s", base, position)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("wait API: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("wait API: %s: %s", resp.Status, body)
	}
	var w httpapi.WaitJSON
	if err := json.Unmarshal(body, &w); err != nil {
		return fmt.Errorf("wait API: %w", err)
	}
	path, _ := url.Parse(u)
	fmt.Fprintf(a.stdout, "waited  GET %s → %d, reached %d (%s)\n", path.RequestURI(), resp.StatusCode, w.Position, time.Since(start).Round(time.Millisecond))
	dogs, tricks, err := count(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "counts  dogs=%d tricks=%d\n", dogs, tricks)
	return nil
}

// demoPostgres loads the embedded dog_counts projection, opens the database, checks and
// migrates the projection, and resets it (the emulator's log is new on every run). closeDB
// closes the pool and the store.
func (a *app) demoPostgres(ctx context.Context, log *zap.Logger) (pool *pgxpool.Pool, store *postgres.Store, closeDB func(), cfg *config.Config, err error) {
	b, err := examples.Files.ReadFile(examples.DogCounts)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cfg, err = config.Parse("examples/"+examples.DogCounts, b)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pool, store, closeDB, err = a.openStore(ctx, log, false)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	err = checkSQL(ctx, pool, cfg)
	if err == nil {
		err = migrate(ctx, pool, store, cfg, log)
	}
	if err == nil {
		_, err = resetProjection(ctx, store, &cfg.Projections[0])
	}
	if err != nil {
		closeDB()
		return nil, nil, nil, nil, err
	}
	return pool, store, closeDB, cfg, nil
}

func pgCounts(ctx context.Context, pool *pgxpool.Pool) (dogs, tricks int64, err error) {
	err = pool.QueryRow(ctx, `SELECT coalesce(sum(n) FILTER (WHERE name = 'dogs'), 0), coalesce(sum(n) FILTER (WHERE name = 'tricks'), 0) FROM dog_counts`).Scan(&dogs, &tricks)
	return dogs, tricks, err
}

// countProjection is the seed's CountProjection on the memory view: it counts registered dogs
// and added tricks.
type countProjection struct{}

func (countProjection) Name() string { return "dog_counts" }
func (countProjection) Topics() []string {
	return []string{trainingschool.TopicDogRegistered, trainingschool.TopicTrickAdded}
}

// Reset empties the counts, for a rebuild.
func (countProjection) Reset(_ context.Context, tx *memory.Tx) error {
	tx.Delete("dogs")
	tx.Delete("tricks")
	return nil
}

func (countProjection) Handle(_ context.Context, tx *memory.Tx, e projection.Event) error {
	switch e.Type {
	case trainingschool.TopicDogRegistered:
		tx.Add("dogs", 1)
	case trainingschool.TopicTrickAdded:
		tx.Add("tricks", 1)
	}
	return nil
}
