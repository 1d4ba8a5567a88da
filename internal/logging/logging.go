// Package logging builds Projector's zap loggers (JSON by default, console for humans) and an
// Observer that logs what the runner reports: every line about a projection carries its name
// and position, and nothing is logged per event at info level.
package logging

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// New returns a logger writing to w in format ("json" or "console") at level ("debug", "info",
// "warn" or "error").
func New(w io.Writer, format, level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(strings.ToLower(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	var enc zapcore.Encoder
	switch format {
	case "", "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		cfg.TimeKey = "time"
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly + ".000")
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, fmt.Errorf("log format %q: use json or console", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// Observer logs what a runner reports: one line per state change of a projection (retrying,
// recovered, on standby, leadership acquired or lost, stopped with its poison event, resumed or
// skipped past it), per fault and per failed event, each with the projection and its position.
type Observer struct {
	log *zap.Logger
	mu  sync.Mutex
	pos map[string]uint64 // last committed position per projection
	// poison holds the event a projection stopped on (from EventFailed with policy stop) until it
	// leaves the stopped state.
	poison   map[string]failedEvent
	commands map[string]string // the operator's pending command per projection: resume or skip
}

type failedEvent struct {
	e   projection.Event
	err error
}

// NewObserver returns an Observer logging to log.
func NewObserver(log *zap.Logger) *Observer {
	return &Observer{log: log, pos: map[string]uint64{}, poison: map[string]failedEvent{}, commands: map[string]string{}}
}

// Commanded records that an operator asked to resume ("resume") or skip ("skip") projection
// name, so that the line logged when it leaves the stopped state says which; "" withdraws it
// (the command was refused).
func (o *Observer) Commanded(name, command string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if command == "" {
		delete(o.commands, name)
		return
	}
	o.commands[name] = command
}

// SetPosition records the position of projection name for the lines logged about it before its
// first commit (e.g. the position loaded from tracking).
func (o *Observer) SetPosition(name string, position uint64) {
	o.mu.Lock()
	o.pos[name] = position
	o.mu.Unlock()
}

func (o *Observer) fields(name string) []zap.Field {
	o.mu.Lock()
	p := o.pos[name]
	o.mu.Unlock()
	return []zap.Field{zap.String("projection", name), zap.Uint64("position", p)}
}

// Projection returns the logger for lines about projection name at position.
func Projection(log *zap.Logger, name string, position uint64) *zap.Logger {
	return log.With(zap.String("projection", name), zap.Uint64("position", position))
}

func eventFields(e projection.Event) []zap.Field {
	return []zap.Field{
		zap.String("event_id", e.ID), zap.String("event_type", e.Type), zap.String("stream", e.Stream),
		zap.Uint64("revision", e.Revision), zap.Uint64("event_position", e.Position.Commit),
	}
}

// BatchCommitted implements projection.Observer; batches are logged at debug level only.
func (o *Observer) BatchCommitted(name string, events int, d time.Duration, s tracking.State) {
	o.SetPosition(name, s.Reached())
	if ce := o.log.Check(zap.DebugLevel, "batch committed"); ce != nil {
		ce.Write(zap.String("projection", name), zap.Uint64("position", s.Reached()),
			zap.Int("events", events), zap.Duration("duration", d), zap.Uint64("checkpoint", s.Checkpoint))
	}
}

// EventFailed implements projection.Observer.
func (o *Observer) EventFailed(name string, e projection.Event, err error, policy string) {
	if policy == string(projection.PolicyStop) {
		o.mu.Lock()
		o.poison[name] = failedEvent{e: e, err: err}
		o.mu.Unlock()
	}
	o.log.Warn("event failed", append(eventFields(e), zap.String("projection", name),
		zap.Uint64("position", e.Position.Commit), zap.String("policy", policy), zap.Error(err))...)
}

// EventDeadLettered implements projection.Observer.
func (o *Observer) EventDeadLettered(name string, e projection.Event, err error) {
	o.log.Error("event dead-lettered and skipped", append(eventFields(e), zap.String("projection", name),
		zap.Uint64("position", e.Position.Commit), zap.Error(err))...)
}

// Error implements projection.Observer.
func (o *Observer) Error(name, kind string, err error) {
	o.log.Warn("projection error", append(o.fields(name), zap.String("kind", kind), zap.Error(err))...)
}

// SubscriptionRestarted implements projection.Observer.
func (o *Observer) SubscriptionRestarted(name string, err error) {
	o.log.Warn("subscription restarted", append(o.fields(name), zap.Error(err))...)
}

// StateChanged implements projection.Observer. Each change is one line, whose message says
// what happened; every line has the projection, its position, and the states from and to.
func (o *Observer) StateChanged(name string, from, to projection.RunState, err error) {
	fields := append(o.fields(name), zap.String("from", string(from)), zap.String("to", string(to)))
	o.mu.Lock()
	poison, hasPoison := o.poison[name]
	command := o.commands[name]
	leavesStop := from == projection.StateStopped && to != projection.StateStopped
	if leavesStop || to == projection.StateDone || (to == projection.StateStandby && err != nil) {
		delete(o.poison, name)
		delete(o.commands, name)
	}
	o.mu.Unlock()
	if hasPoison && (to == projection.StateStopped || leavesStop) {
		fields = append(fields, eventFields(poison.e)...)
		if to == projection.StateStopped {
			fields = append(fields, zap.NamedError("event_error", poison.err))
		}
	}
	switch {
	case to == projection.StateStopped:
		o.log.Error("projection stopped", append(fields, zap.Error(err))...)
	case to == projection.StateDone:
		o.log.Info("projection state changed", fields...)
	case to == projection.StateStandby && err != nil:
		o.log.Warn("leadership lost", append(fields, zap.Error(err))...)
	case leavesStop && command == "skip":
		o.log.Info("projection resumed past its poison event (skip)", fields...)
	case leavesStop:
		o.log.Info("projection resumed", fields...)
	case to == projection.StateRetrying:
		o.log.Warn("projection retrying", append(fields, zap.Error(err))...)
	case from == projection.StateRetrying:
		o.log.Info("projection recovered", fields...)
	case to == projection.StateStandby:
		o.log.Info("projection on standby", fields...)
	case from == projection.StateStandby && to == projection.StateStarting:
		o.log.Info("leadership acquired", fields...)
	case err != nil:
		o.log.Warn("projection state changed", append(fields, zap.Error(err))...)
	default:
		o.log.Info("projection state changed", fields...)
	}
}

// Multi returns an Observer that reports to each of obs in turn.
func Multi(obs ...projection.Observer) projection.Observer { return multi(obs) }

type multi []projection.Observer

func (m multi) BatchCommitted(n string, ev int, d time.Duration, s tracking.State) {
	for _, o := range m {
		o.BatchCommitted(n, ev, d, s)
	}
}
func (m multi) EventFailed(n string, e projection.Event, err error, p string) {
	for _, o := range m {
		o.EventFailed(n, e, err, p)
	}
}
func (m multi) EventDeadLettered(n string, e projection.Event, err error) {
	for _, o := range m {
		o.EventDeadLettered(n, e, err)
	}
}
func (m multi) Error(n, k string, err error) {
	for _, o := range m {
		o.Error(n, k, err)
	}
}
func (m multi) SubscriptionRestarted(n string, err error) {
	for _, o := range m {
		o.SubscriptionRestarted(n, err)
	}
}
func (m multi) StateChanged(n string, f, t projection.RunState, err error) {
	for _, o := range m {
		o.StateChanged(n, f, t, err)
	}
}
