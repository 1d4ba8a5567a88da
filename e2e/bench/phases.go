package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
)

// stopTimeout bounds the daemon's graceful shutdown.
const stopTimeout = 60 * time.Second

// daemonPhases runs the daemon over the seeded log in a fresh database: the catch-up (timed
// from the process's start until every projection has processed the head; then SIGTERM, for
// its CPU time and peak RSS), the view's check, and, in a second run of the daemon on the
// same database, the read-your-writes rounds.
func (o Options) daemonPhases(ctx context.Context, r *Report, bins Binaries, configFile, kurrentURI string, client *kurrentdb.Client, seeded SeedResult) (err error) {
	db, err := CreateDatabase(ctx, "projector_bench_daemon_")
	if err != nil {
		return err
	}
	defer func() { err = dropDatabase(ctx, db, err) }()
	if r.Machine.PostgreSQL, err = ServerVersion(ctx, db.URL); err != nil {
		return err
	}
	if err := Migrate(ctx, bins, configFile, db.URL); err != nil {
		return err
	}

	o.logf("daemon catch-up over %d events (%d of the projections' topics)", seeded.Counts.Total(), seeded.Handled.Total())
	start := time.Now()
	d, err := StartDaemon(bins, configFile, db.URL, kurrentURI)
	if err != nil {
		return err
	}
	defer d.Proc.Kill()
	caught, err := d.WaitAll(ctx, r.Projections, seeded.Head, start, o.CatchUpTime)
	if err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	var elapsed time.Duration
	for _, t := range caught {
		elapsed = max(elapsed, t)
	}
	r.CaughtUpAt = caught
	r.CatchUp = Phase{Events: seeded.Handled.Total(), Duration: elapsed}
	r.CatchUpAll = Phase{Events: seeded.Counts.Total(), Duration: elapsed}
	usage, err := d.Proc.Stop(stopTimeout)
	if err != nil {
		return err
	}
	r.DaemonCPU, r.PeakRSSCatchUp = usage.CPU, usage.PeakRSS
	if r.Verified["daemon"], err = Verify(ctx, db.URL, o.Checks, seeded.Handled); err != nil {
		return fmt.Errorf("after the daemon's catch-up: %w", err)
	}

	o.logf("read-your-writes: %d rounds", o.Rounds)
	live, err := StartDaemon(bins, configFile, db.URL, kurrentURI)
	if err != nil {
		return err
	}
	defer live.Proc.Kill()
	if _, err := live.WaitAll(ctx, r.Projections, seeded.Head, time.Now(), o.CatchUpTime); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	waits, appends, err := ReadYourWrites(ctx, live, client, r.Projections, o.Rounds)
	if err != nil {
		return err
	}
	r.ReadYourWrites = map[string]Latency{}
	for name, s := range waits {
		r.ReadYourWrites[name] = Summarise(s)
	}
	r.Appends = Summarise(appends)
	usage, err = live.Proc.Stop(stopTimeout)
	if err != nil {
		return err
	}
	r.PeakRSSLive = usage.PeakRSS
	return nil
}

// replayPhases measures the PostgreSQL ceiling (the handlers replayed from memory over the
// same events, batched as the daemon batches) and the one-transaction-per-event baseline over
// a sample, each in a fresh database, and checks both views.
func (o Options) replayPhases(ctx context.Context, r *Report, bins Binaries, configFile string, cfg *config.Config, topics map[string]bool) error {
	events := ReplayEvents(o.Workload, topics)
	o.logf("PostgreSQL ceiling: replaying %d events", len(events))
	elapsed, verified, err := o.replayInFreshDatabase(ctx, bins, configFile, cfg, events, 0)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	r.Ceiling = Phase{Events: int64(len(events)), Duration: elapsed}
	r.Verified["ceiling"] = verified

	sample := events[:min(o.NaiveEvents, len(events))]
	o.logf("one transaction per event: replaying %d events", len(sample))
	elapsed, verified, err = o.replayInFreshDatabase(ctx, bins, configFile, cfg, sample, 1)
	if err != nil {
		return fmt.Errorf("one transaction per event: %w", err)
	}
	r.Naive = Phase{Events: int64(len(sample)), Duration: elapsed}
	r.Verified["naive"] = verified
	return nil
}

func (o Options) replayInFreshDatabase(ctx context.Context, bins Binaries, configFile string, cfg *config.Config, events []projection.Event, batchSize int) (elapsed time.Duration, verified string, err error) {
	db, err := CreateDatabase(ctx, "projector_bench_replay_")
	if err != nil {
		return 0, "", err
	}
	defer func() { err = dropDatabase(ctx, db, err) }()
	if err := Migrate(ctx, bins, configFile, db.URL); err != nil {
		return 0, "", err
	}
	if elapsed, err = Replay(ctx, db.URL, cfg, events, batchSize); err != nil {
		return 0, "", err
	}
	verified, err = Verify(ctx, db.URL, o.Checks, CountEvents(events))
	return elapsed, verified, err
}

// dropDatabase drops db and returns err, or the drop's error when err is nil.
func dropDatabase(ctx context.Context, db Database, err error) error {
	derr := db.Drop(context.WithoutCancel(ctx))
	if err == nil {
		return derr
	}
	return err
}
