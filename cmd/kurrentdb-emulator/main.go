// Command kurrentdb-emulator runs the KurrentDB-compatible dev/test server of
// package emulator: plaintext (h2c) gRPC with authentication disabled, and
// optionally a TLS listener that authenticates the default users
// (admin:changeit, ops:changeit). It is a development and test tool, never a
// production event store.
//
//	kurrentdb-emulator --listen 127.0.0.1:2113 --data ./kurrent-data
//	kurrentdb-emulator --listen 127.0.0.1:2114 --tls-listen 127.0.0.1:2115 \
//	    --tls-cert node.crt --tls-key node.key
//
// SIGTERM or SIGINT stops it gracefully with exit status 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the parsed command line.
type config struct {
	opts        emulator.Options
	logLevel    string
	showVersion bool
}

// parseFlags reads the command line into a config.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("kurrentdb-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.opts.Listen, "listen", "127.0.0.1:2113", "address of the plaintext (h2c) gRPC listener; authentication is disabled on it")
	fs.StringVar(&c.opts.TLSListen, "tls-listen", "", "address of the TLS gRPC listener (off when empty); it authenticates admin:changeit and ops:changeit")
	fs.StringVar(&c.opts.TLSCertFile, "tls-cert", "", "PEM certificate of the TLS listener (a self-signed one is generated when empty)")
	fs.StringVar(&c.opts.TLSKeyFile, "tls-key", "", "PEM private key of the TLS listener")
	fs.StringVar(&c.opts.DataDir, "data", "", "directory the log is persisted in and reloaded from (memory only when empty)")
	fs.BoolVar(&c.opts.SeparateStores, "separate-stores", false, "give the TLS listener its own log, as two separate servers would have")
	fs.StringVar(&c.opts.Version, "kurrentdb-version", emulator.DefaultVersion, "KurrentDB version reported to clients (Major.Minor.Patch)")
	fs.StringVar(&c.opts.AdvertiseHost, "advertise-host", "", "host reported by Gossip (the listener's host when empty)")
	fs.IntVar(&c.opts.MaxAppendEvents, "max-append-events", emulator.DefaultMaxAppendEvents,
		"most events one append request may carry (Append, a BatchAppend write, an AppendSession); more fail with InvalidArgument (Aborted for AppendSession)")
	fs.IntVar(&c.opts.MaxSubscriptions, "max-subscriptions", emulator.DefaultMaxSubscriptions,
		"most subscriptions served at once per log; one more fails with ResourceExhausted until one ends")
	fs.DurationVar(&c.opts.FilterBudget, "filter-budget", emulator.DefaultFilterBudget,
		"time a read's or subscription's server-side filter may spend on one page of records; past it the call ends with ResourceExhausted")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.showVersion, "version", false, "print the build version and the KurrentDB protocol version, then exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	switch {
	case c.opts.MaxAppendEvents <= 0:
		return c, fmt.Errorf("--max-append-events %d: must be at least 1", c.opts.MaxAppendEvents)
	case c.opts.MaxSubscriptions <= 0:
		return c, fmt.Errorf("--max-subscriptions %d: must be at least 1", c.opts.MaxSubscriptions)
	case c.opts.FilterBudget <= 0:
		return c, fmt.Errorf("--filter-budget %s: must be positive", c.opts.FilterBudget)
	}
	return c, nil
}

// run is main with its inputs and outputs made explicit; it returns the
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kurrentdb-emulator:", err)
		return 2
	}
	if c.showVersion {
		fmt.Fprintf(stdout, "kurrentdb-emulator %s (KurrentDB protocol %s)\n", version.Version, c.opts.Version)
		return 0
	}
	log, err := newLogger(c.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kurrentdb-emulator:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	c.opts.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := emulator.Start(ctx, c.opts)
	if err != nil {
		log.Error("start failed", zap.Error(err))
		return 1
	}
	log.Info("ready", zap.String("uri", srv.URI()), zap.String("tls_uri", srv.TLSURI()),
		zap.String("build", version.Version))
	<-ctx.Done()
	log.Info("shutting down")
	if err := srv.Close(); err != nil {
		log.Error("shutdown failed", zap.Error(err))
		return 1
	}
	return 0
}

// newLogger builds a JSON logger at the given level writing to w.
func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}
