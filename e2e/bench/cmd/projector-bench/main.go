// Command projector-bench is Projector's end-to-end benchmark (make bench-e2e): the real
// daemon and KurrentDB emulator binaries, a fresh PostgreSQL database on the test server
// (PROJECTOR_TEST_DATABASE_URL, by default 127.0.0.1:5432), a seeded training-school log, and
// one table of figures at the end, a column per form: the per-event examples and the batch
// examples, each measured against a fresh database over the same log. Run it from the
// module's root:
//
//	go run ./e2e/bench/cmd/projector-bench -events 50000 -json bench.json
//
// It exits 1 when a step fails, a view is wrong or the daemon's peak RSS exceeds -max-rss, and
// 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/projector-dev/projector/e2e/bench"
	"github.com/projector-dev/projector/projection"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// flags is the parsed command line.
type flags struct {
	opts     bench.Options
	configs  string
	batch    string
	maxRSS   int64 // MiB
	jsonFile string
	// partitions and partitionConfig: the partitioned forms, which replace the others.
	partitions      string
	partitionConfig string
}

// parseFlags reads the command line; the defaults of every option are here.
func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("projector-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.opts.Workload.Events, "events", 1_000_000, "events in the seeded log")
	fs.Float64Var(&f.opts.Workload.OtherShare, "other-share", 0.1, "share of the events of types the training school's projections ignore (invoices)")
	fs.IntVar(&f.opts.Workload.MaxTricks, "max-tricks", 8, "most tricks of one dog (dog i has i mod (max-tricks+1)); one append per dog")
	fs.IntVar(&f.opts.Workload.InvoiceLines, "invoice-lines", 99, "lines per invoice (one append per invoice)")
	fs.IntVar(&f.opts.Appenders, "appenders", 8, "concurrent appenders while seeding")
	fs.StringVar(&f.configs, "config", "examples/training_school.yaml,examples/dog_counts.yaml", "projections files of the per-event form, comma-separated, run together by one daemon; given without -batch-config, only this set runs")
	fs.StringVar(&f.batch, "batch-config", "examples/training_school_batch.yaml,examples/dog_counts_batch.yaml", "projections files of the batch form, comma-separated, measured after the per-event form over the same log; empty to leave it out")
	fs.StringVar(&f.opts.BinDir, "bin", "", "directory of prebuilt projector and kurrentdb-emulator binaries (make build's bin); built afresh when empty")
	fs.IntVar(&f.opts.NaiveEvents, "naive-events", 20_000, "events of the one-transaction-per-event sample")
	fs.IntVar(&f.opts.Rounds, "rounds", 300, "read-your-writes rounds (append, then wait)")
	fs.Int64Var(&f.maxRSS, "max-rss", 100, "bound on the daemon's peak RSS in MiB; exceeding it fails the run")
	fs.DurationVar(&f.opts.CatchUpTime, "catch-up-timeout", 30*time.Minute, "how long the daemon may take to catch up")
	fs.StringVar(&f.jsonFile, "json", "", "also write the figures as JSON to this file")
	fs.StringVar(&f.partitions, "partitions", "", "numbers of partitions, comma-separated (such as 1,2,4): measure the projections of -partition-config once for each, in that many partitions, instead of the per-event and batch forms")
	fs.Func("daemon-env", "a `KEY=VALUE` setting of every projector run, such as PROJECTOR_SHARED_READ=off (repeatable)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q: want KEY=VALUE", v)
		}
		f.opts.DaemonEnv = append(f.opts.DaemonEnv, v)
		return nil
	})
	fs.DurationVar(&f.opts.PGLatency, "pg-latency", 0, "delay each direction between every projector run and PostgreSQL by this much through a proxy, as a network would (0: direct)")
	fs.StringVar(&f.partitionConfig, "partition-config", "examples/training_school.yaml", "projections files of the partitioned forms, comma-separated (see -partitions)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	switch {
	case f.opts.Appenders < 1:
		return f, fmt.Errorf("-appenders %d: want at least 1", f.opts.Appenders)
	case f.opts.NaiveEvents < 1:
		return f, fmt.Errorf("-naive-events %d: want at least 1", f.opts.NaiveEvents)
	case f.opts.Rounds < 1:
		return f, fmt.Errorf("-rounds %d: want at least 1", f.opts.Rounds)
	case f.maxRSS < 1:
		return f, fmt.Errorf("-max-rss %d: want at least 1 (MiB)", f.maxRSS)
	case f.opts.CatchUpTime <= 0:
		return f, fmt.Errorf("-catch-up-timeout %v: want a positive duration", f.opts.CatchUpTime)
	}
	if err := f.opts.Workload.Validate(); err != nil {
		return f, fmt.Errorf("workload flags: %w", err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	name := "per-event"
	if set["config"] && !set["batch-config"] {
		name, f.batch = "custom", "" // a custom set alone
	}
	perEvent := splitList(f.configs)
	if len(perEvent) == 0 {
		return f, errors.New("-config: no projections file")
	}
	f.opts.Forms = []bench.Form{{Name: name, Configs: perEvent}}
	if batch := splitList(f.batch); len(batch) > 0 {
		f.opts.Forms = append(f.opts.Forms, bench.Form{Name: "batch", Configs: batch})
	}
	if f.partitions != "" {
		forms, err := partitionForms(f.partitions, splitList(f.partitionConfig))
		if err != nil {
			return f, err
		}
		f.opts.Forms = forms
	}
	f.opts.MaxRSS = f.maxRSS << 20
	f.opts.Checks = bench.TrainingSchoolChecks()
	return f, nil
}

// partitionForms returns a form of configs for each number of partitions of list.
func partitionForms(list string, configs []string) ([]bench.Form, error) {
	if len(configs) == 0 {
		return nil, errors.New("-partition-config: no projections file")
	}
	var forms []bench.Form
	for _, s := range splitList(list) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > projection.MaxPartitions {
			return nil, fmt.Errorf("-partitions %q: %q is not a number of partitions from 1 to %d", list, s, projection.MaxPartitions)
		}
		forms = append(forms, bench.Form{Name: fmt.Sprintf("partitions=%d", n), Configs: configs, Partitions: n})
	}
	if len(forms) == 0 {
		return nil, fmt.Errorf("-partitions %q: no number of partitions", list)
	}
	return forms, nil
}

// splitList returns the non-empty items of a comma-separated list, trimmed.
func splitList(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// run is main with its inputs and outputs explicit; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "projector-bench:", err)
		return 2
	}
	f.opts.Log = stderr
	r, err := bench.Run(ctx, f.opts)
	if r != nil && (err == nil || errors.Is(err, bench.ErrRSSExceeded)) {
		fmt.Fprintln(stdout)
		if werr := r.WriteTable(stdout); werr != nil {
			err = errors.Join(err, werr)
		}
		if f.jsonFile != "" {
			err = errors.Join(err, r.WriteJSON(f.jsonFile))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "projector-bench:", err)
		return 1
	}
	return 0
}
