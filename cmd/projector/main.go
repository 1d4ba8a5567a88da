// Command projector keeps PostgreSQL read models up to date from a KurrentDB event log.
//
// Usage:
//
//	projector run      --config projections.yaml   # the daemon
//	projector migrate  --config projections.yaml   # Projector's tables and each projection's schema
//	projector status   --config projections.yaml [--json | --watch]
//	projector reset    --config projections.yaml NAME
//	projector wait     --config projections.yaml NAME POSITION [--timeout 30s]
//	projector resume   NAME [--server URL] [--admin-token T]  # retry the event a stopped projection halted on
//	projector skip     NAME [--server URL] [--admin-token T]  # go on past it, into the dead letters
//	projector rebuild  --config projections.yaml NAME  # rebuild in a shadow schema, then swap in
//	projector rollback --config projections.yaml NAME  # swap the previous version back in
//	projector demo     [--exit]
//	projector version
//
// Connections come from the environment (KURRENTDB_URI, KURRENTDB_ROOT_CERTIFICATES,
// DATABASE_URL, PROJECTOR_HTTP_ADDR, PROJECTOR_LOG_LEVEL, PROJECTOR_LOG_FORMAT,
// PROJECTOR_CONFIG, PROJECTOR_DRAIN_TIMEOUT, PROJECTOR_ADMIN_TOKEN, PROJECTOR_ADMIN_TOKEN_FILE);
// flags override them. Exit codes: 0 success, 1 failure (or a wait that timed out), 2 invalid
// configuration or usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/logging"
	"github.com/projector-dev/projector/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line.
type usageError struct{ error }

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// app is the state shared by the subcommands.
type app struct {
	stdout, stderr io.Writer
	// settings hold the flags' values once parsed, then the resolved settings (resolve).
	settings config.Settings
	lookup   func(string) (string, bool)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	a := &app{stdout: stdout, stderr: stderr, lookup: lookup}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "projector:", err)
	var ee *exitError
	var ue usageError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case config.IsValidation(err), errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return exitInvalid
	}
	return exitFailure
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "projector",
		Short: "Keep PostgreSQL read models up to date from a KurrentDB event log",
		Long: `Projector subscribes to KurrentDB's $all stream, filtered on the server by the event types its
projections handle, and commits each view change together with the projection's position in one
PostgreSQL transaction.

Connections come from the environment: KURRENTDB_URI, KURRENTDB_ROOT_CERTIFICATES, DATABASE_URL,
PROJECTOR_HTTP_ADDR, PROJECTOR_LOG_LEVEL, PROJECTOR_LOG_FORMAT, PROJECTOR_CONFIG,
PROJECTOR_DRAIN_TIMEOUT, PROJECTOR_ADMIN_TOKEN and PROJECTOR_ADMIN_TOKEN_FILE. Flags override them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// The environment is read once the flags are parsed, so help never shows its values.
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) { a.resolve(cmd) }
	f := root.PersistentFlags()
	a.envFlag(f, "config", "projections YAML file")
	a.envFlag(f, "kurrentdb-uri", "KurrentDB connection string")
	a.envFlag(f, "kurrentdb-root-certificates", "PEM text or file of the KurrentDB CA")
	a.envFlag(f, "database-url", "PostgreSQL URL or DSN")
	a.envFlag(f, "http-addr", "HTTP listen address for /metrics, /healthz, /readyz and /v1")
	a.envFlag(f, "log-level", "debug, info, warn or error")
	a.envFlag(f, "log-format", "json or console")
	root.AddCommand(
		a.runCommand(), a.migrateCommand(), a.statusCommand(), a.resetCommand(), a.waitCommand(),
		a.controlCommand("resume"), a.controlCommand("skip"), a.rebuildCommand(), a.rollbackCommand(), a.deadLettersCommand(), a.parkedCommand(),
		a.demoCommand(), a.versionCommand(),
	)
	return root
}

// envFlag adds the string flag backed by an environment variable (config.Variables) to fs,
// with usage. Its help shows the variable's name as the default, never its value; resolve
// fills the setting after parsing.
func (a *app) envFlag(fs *pflag.FlagSet, flag, usage string) {
	v, ok := config.VariableOfFlag(flag)
	if !ok {
		panic("no environment variable backs the flag --" + flag)
	}
	def := "$" + v.Env
	if v.Default != "" {
		def += ", else " + v.Default
	}
	fs.StringVarP(v.Of(&a.settings), flag, shorthand(flag), "", fmt.Sprintf("%s (default %s)", usage, def))
}

// shorthand returns the one-letter form of flag, or "".
func shorthand(flag string) string {
	if flag == "config" {
		return "c"
	}
	return ""
}

// resolve completes the settings of cmd once its flags are parsed: a flag given wins, then its
// environment variable, then the built-in default.
func (a *app) resolve(cmd *cobra.Command) {
	a.settings.Resolve(a.lookup, func(flag string) bool {
		f := cmd.Flags().Lookup(flag)
		return f != nil && f.Changed
	})
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stdout, "projector", version.Version)
			return nil
		},
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("usage: %s %s", cmd.CommandPath(), names)}
		}
		return nil
	}
}

// logger returns the logger the settings ask for, writing to stderr.
func (a *app) logger() (*zap.Logger, error) {
	if err := a.settings.Validate(false, false); err != nil {
		return nil, err
	}
	return logging.New(a.stderr, a.settings.LogFormat, a.settings.LogLevel)
}

// loadConfig loads the projections file the settings name.
func (a *app) loadConfig() (*config.Config, error) {
	if a.settings.ConfigFile == "" {
		return nil, &config.Error{File: config.EnvConfig, Msg: "no projections file; give --config FILE or set PROJECTOR_CONFIG"}
	}
	return config.Load(a.settings.ConfigFile)
}

// loggerAndConfig returns the logger and the projections file, which most commands start with.
func (a *app) loggerAndConfig() (*zap.Logger, *config.Config, error) {
	log, err := a.logger()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	return log, cfg, nil
}
