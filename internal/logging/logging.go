// Package logging builds Projector's zap loggers (JSON by default, console for humans) and an
// Observer that logs what the runner reports: every line about a projection carries its name
// and position, and nothing is logged per event at info level.
package logging

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/projector-dev/projector/projection"
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
// It keeps no state: every line is made from the report it logs.
type Observer struct {
	log *zap.Logger
}

// NewObserver returns an Observer logging to log.
func NewObserver(log *zap.Logger) *Observer {
	return &Observer{log: log}
}

// Projection returns the logger for lines about projection name at position.
func Projection(log *zap.Logger, name string, position uint64) *zap.Logger {
	return log.With(projectionFields(name, position)...)
}

func projectionFields(name string, position uint64) []zap.Field {
	return []zap.Field{zap.String("projection", name), zap.Uint64("position", position)}
}

// withPartition adds the partition a report is about to fields, when the projection is
// partitioned.
func withPartition(fields []zap.Field, partition string) []zap.Field {
	if partition == "" {
		return fields
	}
	return append(fields, zap.String("partition", partition))
}

func eventFields(e projection.Event) []zap.Field {
	return []zap.Field{
		zap.String("event_id", e.ID), zap.String("event_type", e.Type), zap.String("stream", e.Stream),
		zap.Uint64("revision", e.Revision), zap.Uint64("event_position", e.Position.Commit),
	}
}

// failureFields are the fields of the event a projection stopped on, as eventFields has them.
func failureFields(f *projection.Failure) []zap.Field {
	return []zap.Field{
		zap.String("event_id", f.EventID), zap.String("event_type", f.Type), zap.String("stream", f.Stream),
		zap.Uint64("revision", f.Revision), zap.Uint64("event_position", f.Position.Commit),
	}
}

// BatchCommitted implements projection.Observer; batches are logged at debug level only.
func (o *Observer) BatchCommitted(b projection.CommittedBatch) {
	if ce := o.log.Check(zap.DebugLevel, "batch committed"); ce != nil {
		ce.Write(withPartition([]zap.Field{zap.String("projection", b.Projection), zap.Uint64("position", b.State.Reached()),
			zap.Int("events", b.Events), zap.Duration("duration", b.Duration), zap.Uint64("checkpoint", b.State.Checkpoint)}, b.Partition)...)
	}
}

// EventFailed implements projection.Observer.
func (o *Observer) EventFailed(f projection.FailedEvent) {
	o.log.Warn("event failed", append(withPartition(eventFields(f.Event), f.Partition), zap.String("projection", f.Projection),
		zap.Uint64("position", f.Event.Position.Commit), zap.String("policy", string(f.Policy)), zap.Error(f.Err))...)
}

// EventDeadLettered implements projection.Observer.
func (o *Observer) EventDeadLettered(f projection.FailedEvent) {
	o.log.Error("event dead-lettered and skipped", append(withPartition(eventFields(f.Event), f.Partition), zap.String("projection", f.Projection),
		zap.Uint64("position", f.Event.Position.Commit), zap.Error(f.Err))...)
}

// Error implements projection.Observer.
func (o *Observer) Error(f projection.Fault) {
	o.log.Warn("projection error", append(withPartition(projectionFields(f.Projection, f.Position), f.Partition), zap.String("kind", f.Kind), zap.Error(f.Err))...)
}

// SubscriptionRestarted implements projection.Observer.
func (o *Observer) SubscriptionRestarted(f projection.Fault) {
	o.log.Warn("subscription restarted", append(withPartition(projectionFields(f.Projection, f.Position), f.Partition), zap.Error(f.Err))...)
}

// StateChanged implements projection.Observer. Each change is one line, whose message says
// what happened; every line has the projection, its position, and the states from and to, and
// a line about a stop on a poison event (entering or leaving it) names the event.
func (o *Observer) StateChanged(c projection.StateChange) {
	from, to, err := c.From, c.To, c.Err
	fields := append(withPartition(projectionFields(c.Projection, c.Position), c.Partition), zap.String("from", string(from)), zap.String("to", string(to)))
	leavesStop := from == projection.StateStopped && to != projection.StateStopped
	if c.Failed != nil {
		fields = append(fields, failureFields(c.Failed)...)
		if to == projection.StateStopped {
			fields = append(fields, zap.String("event_error", c.Failed.Error))
		}
	}
	switch {
	case to == projection.StateStopped:
		o.log.Error("projection stopped", append(fields, zap.Error(err))...)
	case to == projection.StateDone:
		o.log.Info("projection state changed", fields...)
	case to == projection.StateStandby && errors.Is(err, projection.ErrHandedOver):
		o.log.Info("leadership handed over", append(fields, zap.String("reason", err.Error()))...)
	case to == projection.StateStandby && err != nil:
		o.log.Warn("leadership lost", append(fields, zap.Error(err))...)
	case leavesStop && c.Command == projection.CommandSkip:
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

func (m multi) BatchCommitted(b projection.CommittedBatch) {
	for _, o := range m {
		o.BatchCommitted(b)
	}
}
func (m multi) EventFailed(f projection.FailedEvent) {
	for _, o := range m {
		o.EventFailed(f)
	}
}
func (m multi) EventDeadLettered(f projection.FailedEvent) {
	for _, o := range m {
		o.EventDeadLettered(f)
	}
}
func (m multi) Error(f projection.Fault) {
	for _, o := range m {
		o.Error(f)
	}
}
func (m multi) SubscriptionRestarted(f projection.Fault) {
	for _, o := range m {
		o.SubscriptionRestarted(f)
	}
}
func (m multi) StateChanged(c projection.StateChange) {
	for _, o := range m {
		o.StateChanged(c)
	}
}

// TransactionStarted implements projection.TransactionObserver for the observers that do.
func (m multi) TransactionStarted(t projection.Transaction) {
	for _, o := range m {
		if to, ok := o.(projection.TransactionObserver); ok {
			to.TransactionStarted(t)
		}
	}
}

// TransactionEnded implements projection.TransactionObserver for the observers that do.
func (m multi) TransactionEnded(t projection.EndedTransaction) {
	for _, o := range m {
		if to, ok := o.(projection.TransactionObserver); ok {
			to.TransactionEnded(t)
		}
	}
}
