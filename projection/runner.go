// The Runner: what it runs (Add), running it (Run), and what it tells (Status, Wait).

package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/projector-dev/projector/tracking"
)

// Runner runs a set of projections against one Source and one Store. Each projection has its
// own subscription, tracking position, batching and error policy, so one stopped projection
// never stalls the others.
//
// Per projection the runner delivers events in log order, in batches of up to BatchSize events.
// While catching up a batch fills for up to BatchInterval, and is flushed at once when the
// subscription catches up; once live, a batch is committed as soon as the subscription has
// nothing more ready (the next batch fills while one commits). Each batch is one store
// transaction: the handlers, then the tracking advance by compare-and-set, then the commit.
// After the commit the in-process watermark moves and Wait callers wake.
//
// Resilience, per projection:
//   - With Options.Leader, the projection runs only while this process holds its lease and
//     waits as a standby otherwise. Every batch runs under the lease's context and is not
//     committed once the lease has ended; the projection then returns to standby.
//   - Source and store faults are retried forever with capped, jittered exponential backoff,
//     from the committed position, and reported once per fault (see Observer).
//   - A handler error is traced to its event (re-running the batch event by event when the
//     store queues statements, bisecting the batch of a BatchProjection); the events before it
//     commit once, and the error policy decides about the event. A stopped projection waits, keeping its lease, for Resume, Skip or Reset.
//   - When Run's context ends, the batch in flight gets Options.DrainTimeout to commit.
type Runner[Tx any] struct {
	source Source
	store  Store[Tx]
	opts   Options

	mu      sync.Mutex
	workers []*worker[Tx]
	byName  map[string]*worker[Tx]   // by tracking name: a projection's, or a partition's
	groups  map[string][]*worker[Tx] // a partitioned projection's workers, by its name
	units   map[string]*unit[Tx]     // every projection's workers, by its name (see Remove)
	running bool
	closed  bool            // Run's context has ended: nothing more starts
	runCtx  context.Context // Run's context, once running
	unitsWG sync.WaitGroup  // the units started by Run and by Add while running

	wm tracking.Watermark
}

// NewRunner returns a Runner reading from source and writing to store. Add projections, then
// call Run; projections may also be added (Add) and removed (Remove) while it runs.
func NewRunner[Tx any](source Source, store Store[Tx], opts Options) *Runner[Tx] {
	return &Runner[Tx]{source: source, store: store, opts: opts.withDefaults(), byName: make(map[string]*worker[Tx]),
		groups: make(map[string][]*worker[Tx]), units: make(map[string]*unit[Tx])}
}

// Add registers p with its options. While the Runner runs, Add also starts the projection (all
// its partitions' workers): it waits for its lease and subscribes like the projections added
// before Run, and the others go on undisturbed. It fails, naming the problem, on an empty name
// or topic, a duplicate name (including one still being removed), invalid options, a skip
// policy on a store without dead letters, a start at the end on a source that cannot tell the
// head, or a Runner whose Run's context has ended.
func (r *Runner[Tx]) Add(p Projection[Tx], opts ProjectionOptions) error {
	name := p.Name()
	if name == "" {
		return errors.New("projection: Add: empty projection name")
	}
	if strings.Contains(name, PartitionSeparator) {
		return fmt.Errorf("projection %q: the name may not contain %q (it separates a partition's number)", name, PartitionSeparator)
	}
	topics := p.Topics()
	if len(topics) == 0 {
		return fmt.Errorf("projection %q: no topics", name)
	}
	seen := make(map[string]bool, len(topics))
	for i, t := range topics {
		if t == "" {
			return fmt.Errorf("projection %q: topic %d is empty", name, i)
		}
		if seen[t] {
			return fmt.Errorf("projection %q: topic %q listed twice", name, t)
		}
		seen[t] = true
	}
	if err := opts.validate(); err != nil {
		return fmt.Errorf("projection %q options: %w", name, err)
	}
	opts = opts.WithDefaults()
	if opts.OnError.Policy == PolicySkip {
		if _, ok := any(r.store).(DeadLetterer[Tx]); !ok {
			return fmt.Errorf("projection %q: error policy %q needs a store with dead letters, and %T has none", name, PolicySkip, r.store)
		}
	}
	if opts.OnError.Policy == PolicyPark {
		if _, ok := any(r.store).(Parker[Tx]); !ok {
			return fmt.Errorf("projection %q: error policy %q needs a store that parks events, and %T does not", name, PolicyPark, r.store)
		}
	}
	if opts.Start.Kind == StartEnd {
		if _, ok := r.source.(Header); !ok {
			return fmt.Errorf("projection %q: start at end needs a source that reports the head, and %T does not", name, r.source)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("projection %q: Add called once the runner has stopped", name)
	}
	if u, dup := r.units[name]; dup {
		if u.removing {
			return fmt.Errorf("projection %q: added while it is still being removed (Remove returns once it is gone)", name)
		}
		return fmt.Errorf("projection %q added twice", name)
	}
	newWorker := func(trackedAs string, part *partition) *worker[Tx] {
		w := &worker[Tx]{r: r, p: p, name: trackedAs, base: name, part: part, topics: append([]string(nil), topics...), opts: opts, ctl: make(chan Command, 1), resets: make(chan *resetRequest[Tx]), parkReqs: make(chan *parkRequest)}
		w.st = Status{Name: trackedAs, State: StateStarting}
		return w
	}
	u := &unit[Tx]{name: name, done: make(chan struct{})}
	if opts.Partitions < 2 {
		u.workers = []*worker[Tx]{newWorker(name, nil)}
	} else {
		key := partitionKey(opts.PartitionBy)
		u.workers = make([]*worker[Tx], opts.Partitions)
		for i := range u.workers {
			u.workers[i] = newWorker(PartitionName(name, i), &partition{index: i, count: opts.Partitions, key: key})
		}
		for _, w := range u.workers {
			w.siblings = u.workers
		}
		r.groups[name] = u.workers
	}
	for _, w := range u.workers {
		r.workers = append(r.workers, w)
		r.byName[w.name] = w
	}
	r.units[name] = u
	if r.running {
		r.start(u)
	}
	return nil
}

// Run runs every added projection until ctx ends, then drains: each projection finishes and
// commits the batch in flight within Options.DrainTimeout (or rolls it back after it), closes
// its subscription and releases its lease. Projections added (Add) or removed (Remove) while it
// runs start and stop on their own. Run returns once every goroutine it started has ended.
// Transient failures are retried inside, forever; Run returns an error only when it cannot
// start (no projections, or already running). A daemon implements SIGTERM by cancelling ctx and
// waiting for Run to return.
func (r *Runner[Tx]) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("projection: Runner.Run called twice")
	}
	if len(r.workers) == 0 {
		r.mu.Unlock()
		return errors.New("projection: Runner.Run with no projections")
	}
	if r.opts.DrainTimeout < 0 {
		r.mu.Unlock()
		return fmt.Errorf("projection: Options.DrainTimeout %v: must not be negative (zero rolls back the batch in flight at once)", r.opts.DrainTimeout)
	}
	r.running, r.runCtx = true, ctx
	started := make(map[*unit[Tx]]bool, len(r.units))
	for _, w := range r.workers { // in the order they were added
		if u := r.units[w.base]; !started[u] {
			started[u] = true
			r.start(u)
		}
	}
	r.mu.Unlock()

	<-ctx.Done()
	r.mu.Lock()
	r.closed = true // no Add starts a unit after this: the wait below sees them all
	r.mu.Unlock()
	r.unitsWG.Wait()
	return nil
}

// Status returns a snapshot of every projection, in the order they were added. A partitioned
// projection has one entry, which sums up its partitions (see AggregatePartitions), with each
// partition's own entry in Partitions. It is cheap enough for scrape-time metrics.
func (r *Runner[Tx]) Status() []Status {
	r.mu.Lock()
	workers := append([]*worker[Tx](nil), r.workers...)
	r.mu.Unlock()
	out := make([]Status, 0, len(workers))
	for i := 0; i < len(workers); i++ {
		w := workers[i]
		if w.part == nil {
			out = append(out, w.status())
			continue
		}
		parts := make([]Status, 0, w.part.count)
		for _, pw := range workers[i : i+w.part.count] {
			parts = append(parts, pw.status())
		}
		out = append(out, AggregatePartitions(w.base, parts))
		i += w.part.count - 1
	}
	return out
}

// Wait blocks until projection has committed past commit (tracking.State.Done) in this
// process, or ctx ends; it does not poll. A partitioned projection has committed past commit
// once every partition has (its partitions' lowest state, known once this process has read or
// committed each partition's); a partition's name (PartitionName) waits for that partition. A position of an event the projection does not
// subscribe to counts as done once tracking has advanced past it: at once when the subscription
// catches up (KurrentDB sends a checkpoint at the end of the log), and while live within about
// Options.CheckpointEvery plus one probe when the source implements Header and Prober, even with
// no further events in $all. Without a Prober, a live subscription's checkpoint comes only after
// MaxSearchWindow × CheckpointInterval further events of $all (32 by default).
func (r *Runner[Tx]) Wait(ctx context.Context, projection string, commit uint64) (tracking.State, error) {
	r.mu.Lock()
	_, ok := r.byName[projection]
	_, partitioned := r.groups[projection]
	ok = ok || partitioned
	r.mu.Unlock()
	if !ok {
		return tracking.State{}, fmt.Errorf("wait for %q: %w", projection, tracking.ErrUnknownProjection)
	}
	return r.wm.Wait(ctx, projection, commit)
}
