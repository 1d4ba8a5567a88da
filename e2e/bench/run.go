// Package bench is Projector's end-to-end benchmark: it runs the real binaries (the daemon and
// the KurrentDB emulator) against a fresh PostgreSQL database, seeds a training-school event
// log through the official KurrentDB Go client, and measures the daemon's catch-up rate, the
// PostgreSQL ceiling for the same SQL (the projections' compiled handlers replayed from memory
// through the same store), a one-transaction-per-event baseline, the daemon's CPU time and
// peak RSS, and read-your-writes latency through the wait API. Every view it builds is checked.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/source/kurrent"
)

// Options configure a run. Defaults are set by the command's flags.
type Options struct {
	Workload    Workload
	Appenders   int      // concurrent appenders while seeding
	Configs     []string // projections files, run together by one daemon
	BinDir      string   // prebuilt binaries (make build's bin/); built into a temporary directory when empty
	NaiveEvents int      // events of the one-transaction-per-event sample
	Rounds      int      // read-your-writes rounds
	MaxRSS      int64    // bound on the daemon's peak RSS, bytes
	CatchUpTime time.Duration
	Checks      []Check
	Log         io.Writer // progress lines
}

// ErrRSSExceeded is returned (wrapped) when the daemon's peak RSS exceeds Options.MaxRSS; the
// report is complete then.
var ErrRSSExceeded = errors.New("the daemon's peak RSS exceeds the bound")

// Run runs the benchmark and returns its report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Workload.Validate(); err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	r := &Report{Machine: ThisMachine(), Config: o.Configs, RSSBound: o.MaxRSS, Verified: map[string]string{}}
	tmp, err := os.MkdirTemp("", "projector-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	merged, err := MergeConfigs(o.Configs)
	if err != nil {
		return nil, err
	}
	configFile := filepath.Join(tmp, "projections.yaml")
	if err := os.WriteFile(configFile, merged, 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Load(configFile)
	if err != nil {
		return nil, fmt.Errorf("the projections files together: %w", err)
	}
	for _, p := range cfg.Projections {
		r.Projections = append(r.Projections, p.Name)
	}
	topics := Topics(cfg)

	bins, err := o.binaries(ctx, tmp)
	if err != nil {
		return nil, err
	}
	e, err := o.startEmulator(ctx, bins, tmp)
	if err != nil {
		return nil, err
	}
	defer e.Kill()
	client, err := kurrent.NewClient(e.uri, kurrent.ClientOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = client.Close() }()

	o.logf("seeding %d events with %d appenders", o.Workload.Events, o.Appenders)
	start := time.Now()
	seeded, err := Seed(ctx, client, o.Workload, o.Appenders, topics)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	r.Seed = Phase{Events: seeded.Counts.Total(), Duration: time.Since(start)}
	r.Counts.Events = seeded.Counts.Total()
	r.Counts.Registered, r.Counts.Tricks = seeded.Counts.Registered, seeded.Counts.Tricks
	r.Counts.Handled = seeded.Handled.Total()

	if err := o.daemonPhases(ctx, r, bins, configFile, e.uri, client, seeded); err != nil {
		return r, err
	}
	if err := o.replayPhases(ctx, r, bins, configFile, cfg, topics); err != nil {
		return r, err
	}
	r.Machine.LoadEnd = LoadAverage()
	if peak := max(r.PeakRSSCatchUp, r.PeakRSSLive); peak > o.MaxRSS {
		return r, fmt.Errorf("%w: %s > %s", ErrRSSExceeded, mib(peak), mib(o.MaxRSS))
	}
	return r, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench-e2e: "+format+"\n", args...)
	}
}

func (o Options) binaries(ctx context.Context, tmp string) (Binaries, error) {
	if o.BinDir != "" {
		return BinariesIn(o.BinDir)
	}
	o.logf("building the binaries")
	return BuildBinaries(ctx, tmp)
}

// emulator is the running emulator binary and its connection string.
type emulator struct {
	*Proc
	uri string
}

func (o Options) startEmulator(ctx context.Context, bins Binaries, tmp string) (*emulator, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := Start("kurrentdb-emulator", bins.Emulator, Env(), "--listen", addr, "--data", filepath.Join(tmp, "kurrentdb"), "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, p, addr, 30*time.Second); err != nil {
		p.Kill()
		return nil, err
	}
	return &emulator{Proc: p, uri: "kurrentdb://" + addr + "?tls=false"}, nil
}
