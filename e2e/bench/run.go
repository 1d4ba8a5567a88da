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
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/loopback"
	"github.com/projector-dev/projector/source/kurrent"
)

// Form is one set of projections files that one daemon runs together, under a name (such as
// per-event or batch). Every form runs over the same seeded log, each in fresh databases.
type Form struct {
	Name    string
	Configs []string
	// Partitions, when not zero, runs every projection of the form in that many partitions
	// (the projections file's partitions key, set on each).
	Partitions int
}

// Options configure a run. Defaults are set by the command's flags.
type Options struct {
	Workload    Workload
	Appenders   int    // concurrent appenders while seeding
	Forms       []Form // the sets of projections measured, in order
	BinDir      string // prebuilt binaries (make build's bin/); built into a temporary directory when empty
	NaiveEvents int    // events of the one-transaction-per-event sample
	Rounds      int    // read-your-writes rounds
	MaxRSS      int64  // bound on the daemon's peak RSS, bytes
	CatchUpTime time.Duration
	DaemonEnv   []string // KEY=VALUE settings of every `projector run`, such as PROJECTOR_SHARED_READ=off
	// PGLatency, when positive, puts a proxy between every `projector run` and PostgreSQL that
	// delays each direction by it, as a network would (a round trip costs twice it); migrations,
	// the ceiling and the baseline reach PostgreSQL directly.
	PGLatency time.Duration
	Checks    []Check
	Log       io.Writer // progress lines
}

// ErrRSSExceeded is returned (wrapped) when the daemon's peak RSS exceeds Options.MaxRSS; the
// report is complete then.
var ErrRSSExceeded = errors.New("the daemon's peak RSS exceeds the bound")

// form is a form being run: its merged projections file, configuration, report and the
// database of its daemon.
type form struct {
	report     *FormReport
	configFile string
	cfg        *config.Config
	db         Database
}

// Run runs the benchmark and returns its report: the log is seeded once; then, form after
// form, the daemon catches up in a fresh database of its own and the form's ceiling is
// replayed; then every form's daemon answers the read-your-writes rounds; last, every form's
// one-transaction-per-event baseline is replayed.
func Run(ctx context.Context, o Options) (r *Report, err error) {
	if err := o.Workload.Validate(); err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	if len(o.Forms) == 0 {
		return nil, errors.New("no form to run")
	}
	r = &Report{Machine: ThisMachine(), RSSBound: o.MaxRSS, PGLatency: o.PGLatency}
	tmp, err := os.MkdirTemp("", "projector-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	forms := make([]*form, len(o.Forms))
	topics := map[string]bool{}
	for i, f := range o.Forms {
		if forms[i], err = loadForm(f, filepath.Join(tmp, fmt.Sprintf("projections-%d.yaml", i))); err != nil {
			return nil, err
		}
		r.Forms = append(r.Forms, forms[i].report)
		maps.Copy(topics, Topics(forms[i].cfg))
	}
	defer func() {
		for _, f := range forms {
			if f.db.URL != "" {
				err = dropDatabase(ctx, f.db, err)
			}
		}
	}()

	bins, err := o.binaries(ctx, tmp)
	if err != nil {
		return nil, err
	}
	if o.PGLatency > 0 {
		proxy, err := latencyProxy(o.PGLatency)
		if err != nil {
			return nil, err
		}
		defer func() { _ = proxy.Close() }()
		bins.PostgresVia = proxy.Addr()
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

	// Each form's ceiling follows its catch-up, so that both see about the same load from
	// other processes.
	events := ReplayEvents(o.Workload, topics)
	for _, f := range forms {
		if err := o.catchUp(ctx, r, f, bins, e, seeded); err != nil {
			return r, fmt.Errorf("%s: %w", f.report.Name, err)
		}
		if err := o.ceiling(ctx, f, bins, events); err != nil {
			return r, fmt.Errorf("%s: %w", f.report.Name, err)
		}
	}
	head := seeded.Head
	for i, f := range forms {
		if head, err = o.live(ctx, f, bins, e.uri, client, head, i*o.Rounds); err != nil {
			return r, fmt.Errorf("%s: %w", f.report.Name, err)
		}
	}
	for _, f := range forms {
		if err := o.naive(ctx, f, bins, events); err != nil {
			return r, fmt.Errorf("%s: %w", f.report.Name, err)
		}
	}
	r.Machine.LoadEnd = LoadAverage()
	if peak := r.PeakRSS(); peak > o.MaxRSS {
		return r, fmt.Errorf("%w: %s > %s", ErrRSSExceeded, mib(peak), mib(o.MaxRSS))
	}
	return r, nil
}

// loadForm merges f's projections files into file and loads them as the daemon does.
func loadForm(f Form, file string) (*form, error) {
	merged, err := MergeConfigs(f.Configs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	if f.Partitions > 0 {
		if merged, err = WithPartitions(merged, f.Partitions); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	if err := os.WriteFile(file, merged, 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, fmt.Errorf("%s: the projections files together: %w", f.Name, err)
	}
	rep := &FormReport{Name: f.Name, Config: f.Configs, Verified: map[string]string{}}
	for _, p := range cfg.Projections {
		rep.Projections = append(rep.Projections, p.Name)
	}
	return &form{report: rep, configFile: file, cfg: cfg}, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench-e2e: "+format+"\n", args...)
	}
}

func (o Options) binaries(ctx context.Context, tmp string) (Binaries, error) {
	var b Binaries
	var err error
	if o.BinDir != "" {
		b, err = BinariesIn(o.BinDir)
	} else {
		o.logf("building the binaries")
		b, err = BuildBinaries(ctx, tmp)
	}
	b.DaemonEnv = o.DaemonEnv
	return b, err
}

// emulator is the running emulator binary and its connection string.
type emulator struct {
	*Proc
	uri string
}

func (o Options) startEmulator(ctx context.Context, bins Binaries, tmp string) (*emulator, error) {
	addr, err := loopback.FreeAddr()
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
