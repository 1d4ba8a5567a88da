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

// catchUp runs f's daemon over the seeded log in a fresh database (kept in f.db for the live
// phase): timed from the process's start until every projection has processed the head, and
// from when it leads every projection (see WaitLeading); then
// SIGTERM, for its CPU time and peak RSS; then the view's check.
func (o Options) catchUp(ctx context.Context, r *Report, f *form, bins Binaries, e *emulator, seeded SeedResult) (err error) {
	rep := f.report
	if f.db, err = CreateDatabase(ctx, "projector_bench_daemon_"); err != nil {
		return err
	}
	if r.Machine.PostgreSQL, err = ServerVersion(ctx, f.db.URL); err != nil {
		return err
	}
	if err := Migrate(ctx, bins, f.configFile, f.db.URL); err != nil {
		return err
	}
	o.logf("%s: daemon catch-up over %d events (%d of the projections' topics)", rep.Name, seeded.Counts.Total(), seeded.Handled.Total())
	start, emulatorCPU := time.Now(), e.CPU()
	d, err := StartDaemon(bins, f.configFile, f.db.URL, e.uri)
	if err != nil {
		return err
	}
	defer d.Proc.Kill()
	leading := make(chan error, 1)
	go func() {
		var err error
		rep.StartUp, err = d.WaitLeading(ctx, rep.Projections, start, o.CatchUpTime)
		leading <- err
	}()
	caught, err := d.WaitAll(ctx, rep.Projections, seeded.Head, start, o.CatchUpTime)
	if err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	if err := <-leading; err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	var elapsed time.Duration
	for _, t := range caught {
		elapsed = max(elapsed, t)
	}
	rep.EmulatorCPU = e.CPU() - emulatorCPU
	rep.CaughtUpAt = caught
	rep.CatchUp = Phase{Events: seeded.Handled.Total(), Duration: elapsed}
	rep.CatchUpAll = Phase{Events: seeded.Counts.Total(), Duration: elapsed}
	rep.CatchUpLeading = Phase{Events: seeded.Handled.Total(), Duration: elapsed - rep.StartUp}
	usage, err := d.Proc.Stop(stopTimeout)
	if err != nil {
		return err
	}
	rep.DaemonCPU, rep.PeakRSSCatchUp = usage.CPU, usage.PeakRSS
	if rep.Verified["daemon"], err = Verify(ctx, f.db.URL, o.Checks, seeded.Handled); err != nil {
		return fmt.Errorf("after the daemon's catch-up: %w", err)
	}
	return nil
}

// live restarts f's daemon on its database, waits until it has processed head and runs every
// projection live (see StartLiveDaemon: otherwise the first round would measure the daemon's
// start-up), and measures the read-your-writes rounds, appending the dogs latency-first
// onwards. It returns the position of its last append.
func (o Options) live(ctx context.Context, f *form, bins Binaries, kurrentURI string, client *kurrentdb.Client, head uint64, first int) (uint64, error) {
	rep := f.report
	o.logf("%s: read-your-writes: %d rounds", rep.Name, o.Rounds)
	d, err := StartLiveDaemon(ctx, bins, f.configFile, f.db.URL, kurrentURI, rep.Projections, head, o.CatchUpTime)
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	defer d.Proc.Kill()
	s, err := ReadYourWrites(ctx, d, client, rep.Projections, o.Rounds, first)
	if err != nil {
		return 0, err
	}
	rep.ReadYourWrites = map[string]Latency{}
	for name, w := range s.Waits {
		rep.ReadYourWrites[name] = Summarise(w)
	}
	rep.ReadYourAll, rep.Appends = Summarise(s.Every), Summarise(s.Appends)
	usage, err := d.Proc.Stop(stopTimeout)
	if err != nil {
		return 0, err
	}
	rep.PeakRSSLive = usage.PeakRSS
	return s.Last, nil
}

// ceiling measures f's PostgreSQL ceiling: its projections replayed from memory over the same
// events, batched as the daemon batches, in a fresh database; and checks the view.
func (o Options) ceiling(ctx context.Context, f *form, bins Binaries, events []projection.Event) error {
	rep := f.report
	o.logf("%s: PostgreSQL ceiling: replaying %d events", rep.Name, len(events))
	elapsed, verified, err := o.replayInFreshDatabase(ctx, bins, f.configFile, f.cfg, events, 0)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	rep.Ceiling = Phase{Events: int64(len(events)), Duration: elapsed}
	rep.Verified["ceiling"] = verified
	return nil
}

// naive measures f's one-transaction-per-event baseline over the first NaiveEvents of events
// in a fresh database, and checks the view.
func (o Options) naive(ctx context.Context, f *form, bins Binaries, events []projection.Event) error {
	rep := f.report
	sample := events[:min(o.NaiveEvents, len(events))]
	o.logf("%s: one transaction per event: replaying %d events", rep.Name, len(sample))
	elapsed, verified, err := o.replayInFreshDatabase(ctx, bins, f.configFile, f.cfg, sample, 1)
	if err != nil {
		return fmt.Errorf("one transaction per event: %w", err)
	}
	rep.Naive = Phase{Events: int64(len(sample)), Duration: elapsed}
	rep.Verified["naive"] = verified
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
