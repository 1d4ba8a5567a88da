// The options of a Runner and of each projection, their defaults, and the interfaces and
// errors that a store, a source or a leader can offer the runner.

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Defaults of ProjectionOptions: the only place they are defined. The projections file
// (internal/config) leaves a key it does not give at these values, and its reference documents
// them; a test checks that the two agree.
const (
	DefaultBatchSize     = 1000
	DefaultBatchInterval = 10 * time.Millisecond
	DefaultPolicy        = PolicyStop
	// DefaultRetries is how many times PolicyRetry retries a failing event before it stops.
	DefaultRetries = 5
	// DefaultRetryBackoff is PolicyRetry's first wait; it doubles per retry up to
	// DefaultMaxBackoff.
	DefaultRetryBackoff = time.Second
	DefaultStart        = StartBeginning
)

// Defaults of Options (DefaultMaxBackoff also caps PolicyRetry's backoff).
const (
	DefaultCheckpointEvery = time.Second
	DefaultMinBackoff      = 100 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
)

// StartKind says where a projection without a tracking row starts reading $all.
type StartKind int

// String returns the name of k as the projections file spells it: beginning, end, or after
// (a commit position).
func (k StartKind) String() string {
	switch k {
	case StartBeginning:
		return "beginning"
	case StartEnd:
		return "end"
	case StartAfter:
		return "after"
	}
	return fmt.Sprintf("StartKind(%d)", int(k))
}

// The start kinds.
const (
	// StartBeginning reads $all from its first event (the default).
	StartBeginning StartKind = iota
	// StartEnd skips everything in $all when the projection first runs; it needs a Source
	// that implements Header.
	StartEnd
	// StartAfter starts strictly after a given commit position.
	StartAfter
)

// Start is where a projection without a tracking row starts. It matters only on the first run:
// afterwards the projection resumes from its tracked position.
type Start struct {
	Kind StartKind
	// Position is the position after which to start, for StartAfter.
	Position Position
}

// Header is implemented by sources that can report the head of $all: the position and
// creation time of its last event (zero values when $all is empty).
type Header interface {
	Head(ctx context.Context) (Position, time.Time, error)
}

// PolicyKind names what a runner does when a handler fails (ErrorPolicy.Policy).
type PolicyKind string

// The error policies.
const (
	// PolicyStop halts the projection (keeping the others running) and reports the failure.
	PolicyStop PolicyKind = "stop"
	// PolicyRetry retries the failing event ErrorPolicy.Retries times with capped exponential
	// backoff, then stops.
	PolicyRetry PolicyKind = "retry"
	// PolicySkip records the failing event in the store's dead-letter table and goes on
	// without it; the store must implement DeadLetterer.
	PolicySkip PolicyKind = "skip"
	// PolicyPark parks the failing event's stream: the event, and every later event of that
	// stream, is recorded in the store's parked events instead of handled, while the other
	// streams go on; an operator resumes the stream (replaying its parked events in order, before
	// any later event of it) or skips it (see Runner.ResumeStream and Runner.SkipStream). The
	// store must implement Parker.
	PolicyPark PolicyKind = "park"
)

// ErrorPolicy is a projection's answer to handler errors. Retries, Backoff and MaxBackoff
// apply to PolicyRetry only: PolicyStop stops at the first failure and PolicySkip
// dead-letters the failing event at once; PolicyPark parks the failing event's stream at once.
type ErrorPolicy struct {
	// Policy is what to do with a failing event (default DefaultPolicy, stop); the projections
	// file's on_error.policy.
	Policy PolicyKind
	// Retries is how many times PolicyRetry retries the failing event before the projection
	// stops (default DefaultRetries); the event is tried Retries+1 times in all. The
	// projections file's on_error.retries.
	Retries int
	// Backoff is PolicyRetry's first wait before a retry (default DefaultRetryBackoff, or
	// MaxBackoff when that is shorter); it doubles per retry, jittered, up to MaxBackoff
	// (default DefaultMaxBackoff, or Backoff when that is longer). The projections file's
	// on_error.backoff.
	Backoff, MaxBackoff time.Duration
}

// ProjectionOptions tune how one projection runs. Zero fields take the defaults (see
// WithDefaults).
type ProjectionOptions struct {
	// BatchSize is the largest number of events committed in one transaction (default
	// DefaultBatchSize; the projections file's batch.size).
	BatchSize int
	// BatchInterval is the longest time an event waits for its batch to fill while the
	// projection catches up (default DefaultBatchInterval; batch.interval). Once the
	// subscription has caught up, batching is natural: a batch is committed as soon as the
	// subscription has nothing more ready, so a live event waits only for the commit in flight,
	// never for BatchInterval.
	BatchInterval time.Duration
	// Start applies when the projection has no tracking row yet (default DefaultStart;
	// start).
	Start Start
	// OnError is the error policy (on_error).
	OnError ErrorPolicy
	// Partitions splits the projection's events by PartitionBy's key into this many
	// partitions (0 or 1: not partitioned; at most MaxPartitions; the projections file's
	// partitions). Each partition is run like a projection of its own, named PartitionName
	// (its own tracking row, lease, transactions and subscription), so partitions run in
	// parallel and spread across replicas; events of one key stay in order. The projection's
	// position is the lowest of its partitions' (see Runner.Status and Runner.Wait).
	Partitions int
	// PartitionBy is the key of Partitions: PartitionByStream (the default: the event's
	// stream) or "data." followed by a dot-separated field path of the event's JSON data,
	// such as "data.tenant" (partition_by). A string field's key is its text, any other
	// value's its compact JSON; an event without the field (or with it null, or whose data is
	// not a JSON object) has the empty key, whose events all go, in order, to one partition.
	PartitionBy string
	// CheckpointEvery, when positive and shorter than the runner's Options.CheckpointEvery,
	// replaces it for this projection: how long its checkpoint-only commits are put off, and
	// its probes' interval. A version building beside the serving one uses a short one, so that
	// its tracking keeps pace with the serving version's and the swap need not wait for it.
	CheckpointEvery time.Duration
}

// Options tune a Runner.
type Options struct {
	// Observer receives reports; nil means NopObserver.
	Observer Observer
	// CheckpointEvery throttles commits that only advance tracking past a server checkpoint
	// with no matching events (default 1s). It bounds how late a Wait for the position of an
	// event a projection does not subscribe to returns once the server has checkpointed past it.
	// It is also how long a live projection with nothing pending waits after its last commit
	// before it probes the source (see Prober), and then between probes.
	CheckpointEvery time.Duration
	// MinBackoff and MaxBackoff bound the backoff between restarts after a transient source or
	// store failure (defaults 100ms and 30s; jittered).
	MinBackoff, MaxBackoff time.Duration
	// Leader, when set, is asked for leadership of each projection before it runs: the
	// projection is processed only while the lease is held, and waits as a standby otherwise.
	Leader Leader
	// DrainTimeout bounds how long Run, once its context ends, lets each projection finish and
	// commit the batch in flight; a batch that has not committed by then is rolled back. Zero
	// rolls back at once; a negative value is an error. The daemon sets it from
	// PROJECTOR_DRAIN_TIMEOUT.
	DrainTimeout time.Duration
}

// Leader grants exclusive leadership of a projection across processes (views/postgres.Elector
// implements it with an advisory lock). Acquire blocks until this process leads projection
// or ctx ends; the returned context ends when leadership is lost (or ctx ends), and release gives
// it up. The runner passes the lease context to the store for every batch, so a store can check
// the lease inside the transaction before it commits, and the commit itself is abandoned when the
// lease ends.
type Leader interface {
	Acquire(ctx context.Context, projection string) (lead context.Context, release func(), err error)
}

// Flusher is implemented by transaction types that queue statements to send them together
// (views/postgres pipelines them in one pgx.Batch per event batch). The runner calls Flush after
// the handlers of a batch, so a failing queued statement counts as a handler error; to find the
// culprit in a batch of several events it re-runs the batch flushing after every event.
type Flusher interface {
	Flush(ctx context.Context) error
}

// DeadLetterer is implemented by stores that can record an event skipped under PolicySkip,
// inside the batch transaction tx.
type DeadLetterer[Tx any] interface {
	DeadLetter(ctx context.Context, tx Tx, projection string, e Event, cause error) error
}

// WithDefaults returns o with every zero field set to its default: the options a projection
// runs with (Runner.Add applies them).
func (o ProjectionOptions) WithDefaults() ProjectionOptions {
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.BatchInterval == 0 {
		o.BatchInterval = DefaultBatchInterval
	}
	if o.OnError.Policy == "" {
		o.OnError.Policy = DefaultPolicy
	}
	if o.OnError.Retries == 0 {
		o.OnError.Retries = DefaultRetries
	}
	if o.OnError.Backoff == 0 {
		o.OnError.Backoff = DefaultRetryBackoff
		if o.OnError.MaxBackoff > 0 {
			o.OnError.Backoff = min(o.OnError.Backoff, o.OnError.MaxBackoff)
		}
	}
	if o.OnError.MaxBackoff == 0 {
		o.OnError.MaxBackoff = max(DefaultMaxBackoff, o.OnError.Backoff)
	}
	return o
}

func (o ProjectionOptions) validate() error {
	var errs []error
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("BatchSize %d: must be positive", o.BatchSize))
	}
	if o.BatchInterval < 0 {
		errs = append(errs, fmt.Errorf("BatchInterval %v: must be positive", o.BatchInterval))
	}
	switch o.OnError.Policy {
	case "", PolicyStop, PolicySkip, PolicyRetry, PolicyPark:
	default:
		errs = append(errs, fmt.Errorf("OnError.Policy %q: want %q, %q, %q or %q", o.OnError.Policy, PolicyStop, PolicyRetry, PolicySkip, PolicyPark))
	}
	if o.OnError.Retries < 0 {
		errs = append(errs, fmt.Errorf("OnError.Retries %d: must not be negative", o.OnError.Retries))
	}
	if o.OnError.Backoff < 0 || o.OnError.MaxBackoff < 0 || (o.OnError.MaxBackoff > 0 && o.OnError.Backoff > o.OnError.MaxBackoff) {
		errs = append(errs, fmt.Errorf("OnError backoff [%v, %v]: want 0 <= Backoff <= MaxBackoff", o.OnError.Backoff, o.OnError.MaxBackoff))
	}
	if o.CheckpointEvery < 0 {
		errs = append(errs, fmt.Errorf("ProjectionOptions.CheckpointEvery %v: must not be negative", o.CheckpointEvery))
	}
	if o.Partitions < 0 || o.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("ProjectionOptions.Partitions %d: want 0 to %d", o.Partitions, MaxPartitions))
	}
	if err := CheckPartitionBy(o.PartitionBy); err != nil {
		errs = append(errs, err)
	} else if o.PartitionBy != "" && o.Partitions < 2 {
		errs = append(errs, fmt.Errorf("PartitionBy %q: needs Partitions of 2 or more (it is %d)", o.PartitionBy, o.Partitions))
	} else if o.Partitions >= 2 && o.PartitionBy != "" && o.PartitionBy != PartitionByStream && o.OnError.Policy == PolicyPark {
		errs = append(errs, fmt.Errorf("PartitionBy %q with OnError.Policy %q: a parked stream's events must stay in one partition; partition by %q", o.PartitionBy, PolicyPark, PartitionByStream))
	}
	switch o.Start.Kind {
	case StartBeginning, StartEnd:
	case StartAfter:
		if err := tracking.CheckStorable(tracking.State{Last: o.Start.Position}); err != nil {
			errs = append(errs, fmt.Errorf("Start.Position: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("Start.Kind %d: unknown", o.Start.Kind))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	return o
}

// Rewinder is implemented by stores that rewind a projection themselves (views/postgres takes
// or checks the projection's leadership lock in the same transaction). Rewind, in one
// transaction, runs reset (emptying the view; nil for none), sets the projection's tracking to
// to (the zero state removes the tracking row, so the configured start applies on the next
// run) and tells waiters; it returns the tracking state the projection had. When ctx carries
// the projection's lease (see Leader), the store checks the lease instead of taking the lock.
// Runner.Reset uses it when the store has it, and Store.Apply otherwise.
type Rewinder[Tx any] interface {
	Rewind(ctx context.Context, projection string, to tracking.State, reset func(ctx context.Context, tx Tx) error) (tracking.State, error)
}

// ErrTransient is wrapped by errors of a store or source that retrying can fix: a lost or
// killed connection, a server restart, a serialization failure. A store wraps a handler's error
// with it when the failure was the connection's, not the event's, so the runner retries the
// batch after a backoff instead of applying the projection's error policy to the event.
var ErrTransient = errors.New("transient failure")

// ErrPermanent is wrapped by errors of a source or store that retrying cannot fix by itself:
// bad credentials, access denied, a request the server rejects as invalid. The runner keeps
// retrying them (an operator may fix the cause outside the process, such as an ACL), but at the
// longest backoff and reporting every attempt through Observer.Error, so they cannot go unseen.
var ErrPermanent = errors.New("permanent failure")

// ErrLeadershipLost is wrapped by the error of a batch that a store refused to commit because
// this process no longer holds the projection's lease.
var ErrLeadershipLost = errors.New("leadership lost")

// ErrNotStopped is returned by Runner.Resume and Runner.Skip for a projection that is not
// stopped (or already has a command pending).
var ErrNotStopped = errors.New("projection is not stopped")
