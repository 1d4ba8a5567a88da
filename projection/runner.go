package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// Runner runs a set of projections against one Source and one Store. Each projection has its
// own subscription, tracking position, batching and error policy, so one stopped projection
// never stalls the others.
//
// Per projection the runner delivers events in log order, in batches of up to BatchSize events
// or BatchInterval, flushed at once when the subscription catches up. Each batch is one store
// transaction: the handlers, then the tracking advance by compare-and-set, then the commit.
// After the commit the in-process watermark moves and Wait callers wake.
type Runner[Tx any] struct {
	source Source
	store  Store[Tx]
	opts   Options

	mu      sync.Mutex
	workers []*worker[Tx]
	byName  map[string]*worker[Tx]
	running bool

	wm tracking.Watermark
}

// NewRunner returns a Runner reading from source and writing to store. Add projections, then
// call Run.
func NewRunner[Tx any](source Source, store Store[Tx], opts Options) *Runner[Tx] {
	return &Runner[Tx]{source: source, store: store, opts: opts.withDefaults(), byName: make(map[string]*worker[Tx])}
}

// Add registers p with its options. It fails, naming the problem, on an empty name or topic,
// a duplicate name, invalid options, a skip policy on a store without dead letters, a start at
// the end on a source that cannot tell the head, or a Runner already running.
func (r *Runner[Tx]) Add(p Projection[Tx], opts ProjectionOptions) error {
	name := p.Name()
	if name == "" {
		return errors.New("projection: Add: empty projection name")
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
	opts = opts.withDefaults()
	if opts.OnError.Kind == PolicySkip {
		if _, ok := any(r.store).(DeadLetterer[Tx]); !ok {
			return fmt.Errorf("projection %q: error policy %q needs a store with dead letters, and %T has none", name, PolicySkip, r.store)
		}
	}
	if opts.Start.Kind == StartEnd {
		if _, ok := r.source.(Header); !ok {
			return fmt.Errorf("projection %q: start at end needs a source that reports the head, and %T does not", name, r.source)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return fmt.Errorf("projection %q: Add called while the runner is running", name)
	}
	if _, dup := r.byName[name]; dup {
		return fmt.Errorf("projection %q added twice", name)
	}
	w := &worker[Tx]{r: r, p: p, name: name, topics: append([]string(nil), topics...), opts: opts}
	w.st = Status{Name: name, State: StateStarting}
	r.workers = append(r.workers, w)
	r.byName[name] = w
	return nil
}

// Run runs every added projection until ctx ends, then returns once every goroutine it started
// has ended. Transient failures are retried inside; Run returns an error only when it cannot
// start (no projections, or already running).
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
	r.running = true
	workers := append([]*worker[Tx](nil), r.workers...)
	r.mu.Unlock()

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Status returns a snapshot of every projection, in the order they were added. It is cheap
// enough for scrape-time metrics.
func (r *Runner[Tx]) Status() []Status {
	r.mu.Lock()
	workers := append([]*worker[Tx](nil), r.workers...)
	r.mu.Unlock()
	out := make([]Status, 0, len(workers))
	for _, w := range workers {
		out = append(out, w.status())
	}
	return out
}

// Wait blocks until projection has committed past commit (tracking.State.Done) in this
// process, or ctx ends; it does not poll. A position of an event the projection does not
// subscribe to counts as done once the server has sent a checkpoint past it and the runner
// has committed that checkpoint (at most Options.CheckpointEvery later, at once on catching up).
// KurrentDB sends one when a catch-up reaches the end of the log, and while live after every
// MaxSearchWindow × CheckpointInterval events written to $all (32 by default), so such a wait
// returns once that many further events have been written.
func (r *Runner[Tx]) Wait(ctx context.Context, projection string, commit uint64) (tracking.State, error) {
	r.mu.Lock()
	_, ok := r.byName[projection]
	r.mu.Unlock()
	if !ok {
		return tracking.State{}, fmt.Errorf("wait for %q: %w", projection, tracking.ErrUnknownProjection)
	}
	return r.wm.Wait(ctx, projection, commit)
}

// worker runs one projection.
type worker[Tx any] struct {
	r      *Runner[Tx]
	p      Projection[Tx]
	name   string
	topics []string
	opts   ProjectionOptions

	mu       sync.Mutex
	st       Status
	caughtUp bool
}

func (w *worker[Tx]) status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.CaughtUp = w.caughtUp && s.OldestPending.IsZero()
	if s.Failed != nil {
		f := *s.Failed
		s.Failed = &f
	}
	return s
}

func (w *worker[Tx]) setState(to RunState, err error) {
	w.mu.Lock()
	from := w.st.State
	w.st.State = to
	w.mu.Unlock()
	if from != to {
		w.r.opts.Observer.StateChanged(w.name, from, to, err)
	}
}

func (w *worker[Tx]) update(f func(st *Status)) {
	w.mu.Lock()
	f(&w.st)
	w.mu.Unlock()
}

// outcome says how a session ended.
type outcome int

const (
	outcomeEnded     outcome = iota // ctx (or leadership) ended
	outcomeTransient                // retry after a backoff
	outcomeStopped                  // halt the projection
)

func (w *worker[Tx]) run(ctx context.Context) {
	obs := w.r.opts.Observer
	bo := backoff{min: w.r.opts.MinBackoff, max: w.r.opts.MaxBackoff}
	defer w.setState(StateDone, nil)
	for ctx.Err() == nil {
		lead, release := ctx, func() {}
		if l := w.r.opts.Leader; l != nil {
			w.setState(StateStandby, nil)
			var err error
			lead, release, err = l.Acquire(ctx, w.name)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				obs.Error(w.name, "leadership", err)
				w.setState(StateRetrying, err)
				sleep(ctx, bo.delay())
				continue
			}
		}
		w.update(func(st *Status) { st.Leader = true })
		out, err := w.session(lead, &bo)
		release()
		w.mu.Lock()
		w.st.Leader = false
		w.st.OldestPending = time.Time{}
		w.caughtUp = false
		w.mu.Unlock()
		switch out {
		case outcomeStopped:
			w.setState(StateStopped, err)
			<-ctx.Done()
			return
		case outcomeTransient:
			w.setState(StateRetrying, err)
			sleep(ctx, bo.delay())
		}
	}
}

// session loads the tracked state, subscribes and consumes until something ends it.
func (w *worker[Tx]) session(ctx context.Context, bo *backoff) (outcome, error) {
	obs := w.r.opts.Observer
	w.setState(StateStarting, nil)
	state, ok, err := w.r.store.Load(ctx, w.name)
	if err != nil {
		return w.failed(ctx, "store", fmt.Errorf("load tracking of %q: %w", w.name, err))
	}
	if !ok {
		if state, err = w.initial(ctx); err != nil {
			if errors.Is(err, tracking.ErrConflict) {
				return outcomeTransient, err // another instance created the row: reload
			}
			return w.failed(ctx, "store", err)
		}
	}
	w.r.wm.Set(w.name, state)
	w.update(func(st *Status) { st.Tracking, st.Position = state, state.Reached() })

	sub, err := w.r.source.Subscribe(ctx, w.topics, state)
	if err != nil {
		if ctx.Err() != nil {
			return outcomeEnded, ctx.Err()
		}
		err = fmt.Errorf("subscribe %q: %w", w.name, err)
		obs.SubscriptionRestarted(w.name, err)
		return outcomeTransient, err
	}
	w.setState(StateCatchingUp, nil)
	return w.consume(ctx, sub, state, bo)
}

// failed classifies a store or source error: ctx's end, or a transient failure to retry.
func (w *worker[Tx]) failed(ctx context.Context, kind string, err error) (outcome, error) {
	if ctx.Err() != nil {
		return outcomeEnded, ctx.Err()
	}
	w.r.opts.Observer.Error(w.name, kind, err)
	return outcomeTransient, err
}

// initial computes and records the state of a projection that has no tracking row.
func (w *worker[Tx]) initial(ctx context.Context) (tracking.State, error) {
	var s tracking.State
	switch w.opts.Start.Kind {
	case StartBeginning:
		return s, nil
	case StartAfter:
		s.Last = w.opts.Start.Position
	case StartEnd:
		head, _, err := w.r.source.(Header).Head(ctx)
		if err != nil {
			return s, fmt.Errorf("read the head of $all for %q: %w", w.name, err)
		}
		if head.IsZero() {
			return s, nil
		}
		s.Last = head
	}
	err := w.r.store.Apply(ctx, w.name, tracking.State{}, s, func(context.Context, Tx) error { return nil })
	if err != nil {
		return s, fmt.Errorf("record the start of %q at %v: %w", w.name, s.Last, err)
	}
	return s, nil
}

type received struct {
	m   Message
	err error
}

// handlerError marks an error returned by the projection's handler for batch[index].
type handlerError struct {
	index int
	err   error
}

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// consume reads sub, batches, and commits, until ctx ends or something fails.
func (w *worker[Tx]) consume(ctx context.Context, sub Subscription, state tracking.State, bo *backoff) (outcome, error) {
	obs := w.r.opts.Observer
	subCtx, cancel := context.WithCancel(ctx)
	msgs := make(chan received, max(64, w.opts.BatchSize)) // the next batch arrives while one commits
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			m, err := sub.Next(subCtx)
			select {
			case msgs <- received{m, err}:
			case <-subCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	defer func() {
		cancel()
		_ = sub.Close()
		wg.Wait()
	}()

	var (
		batch      []Event
		checkpoint uint64 // highest server checkpoint seen (exclusive)
		caughtUp   bool
		lastCommit time.Time
		batchTimer = stoppedTimer()
		cpTimer    = stoppedTimer()
		cpArmed    bool
	)
	defer batchTimer.Stop()
	defer cpTimer.Stop()

	// next is the state after committing what is pending.
	next := func() tracking.State {
		n := state
		if len(batch) > 0 {
			n.Last = batch[len(batch)-1].Position
		}
		if checkpoint > n.Checkpoint {
			n.Checkpoint = checkpoint
		}
		if n.Checkpoint <= n.Last.Commit {
			n.Checkpoint = 0
		}
		return n
	}
	flush := func() (outcome, error, bool) {
		batchTimer.Stop()
		cpTimer.Stop()
		cpArmed = false
		n := next()
		if n == state {
			return 0, nil, true
		}
		if err := tracking.CheckStorable(n); err != nil {
			obs.Error(w.name, "store", err)
			return outcomeStopped, fmt.Errorf("projection %q: %w", w.name, err), false
		}
		out, err, ok := w.commit(ctx, state, n, batch)
		if !ok {
			return out, err, false
		}
		state = n
		batch = batch[:0]
		lastCommit = time.Now()
		bo.reset()
		w.mu.Lock()
		w.st.OldestPending = time.Time{}
		w.caughtUp = caughtUp
		w.mu.Unlock()
		return 0, nil, true
	}

	for {
		select {
		case <-ctx.Done():
			return outcomeEnded, ctx.Err()
		case <-batchTimer.C:
			if out, err, ok := flush(); !ok {
				return out, err
			}
		case <-cpTimer.C:
			cpArmed = false
			if out, err, ok := flush(); !ok {
				return out, err
			}
		case rc := <-msgs:
			if rc.err != nil {
				if ctx.Err() != nil {
					return outcomeEnded, ctx.Err()
				}
				err := fmt.Errorf("subscription of %q: %w", w.name, rc.err)
				obs.SubscriptionRestarted(w.name, err)
				return outcomeTransient, err
			}
			switch m := rc.m; m.Kind {
			case EventMessage:
				e := m.Event
				if state.Done(e.Position.Commit) || (len(batch) > 0 && e.Position.Compare(batch[len(batch)-1].Position) <= 0) {
					continue // already processed: a resume may re-deliver the event at Last
				}
				batch = append(batch, e)
				if len(batch) == 1 {
					batchTimer.Reset(w.opts.BatchInterval)
					w.mu.Lock()
					w.st.OldestPending = e.Created
					w.caughtUp = false
					w.mu.Unlock()
				}
				if len(batch) >= w.opts.BatchSize {
					if out, err, ok := flush(); !ok {
						return out, err
					}
				}
			case CheckpointMessage:
				if m.Checkpoint <= checkpoint {
					continue
				}
				checkpoint = m.Checkpoint
				if len(batch) > 0 || cpArmed || next() == state {
					continue // committed with the batch, or already scheduled, or nothing new
				}
				wait := w.r.opts.CheckpointEvery - time.Since(lastCommit)
				if caughtUp && wait <= 0 {
					if out, err, ok := flush(); !ok {
						return out, err
					}
					continue
				}
				cpTimer.Reset(max(wait, 0))
				cpArmed = true
			case CaughtUpMessage:
				if !caughtUp {
					caughtUp = true
					w.setState(StateLive, nil)
				}
				if out, err, ok := flush(); !ok {
					return out, err
				}
				w.mu.Lock()
				w.caughtUp = len(batch) == 0
				w.mu.Unlock()
			default:
				return w.failed(ctx, "source", fmt.Errorf("subscription of %q: unknown message kind %d", w.name, m.Kind))
			}
		}
	}
}

// commit applies batch and advances tracking from prev to next, applying the error policy to
// handler failures. ok reports success; otherwise out and err say what to do.
func (w *worker[Tx]) commit(ctx context.Context, prev, next tracking.State, batch []Event) (out outcome, err error, ok bool) {
	obs := w.r.opts.Observer
	pol := w.opts.OnError
	skip := map[int]error{}
	retries := 0
	isolate := false // flush after every event, to find which one a failing statement belongs to
	pb := backoff{min: pol.MinBackoff, max: pol.MaxBackoff}
	for {
		start := time.Now()
		err := w.r.store.Apply(ctx, w.name, prev, next, func(ctx context.Context, tx Tx) error {
			flusher, _ := any(tx).(Flusher)
			for i, e := range batch {
				if cause, skipped := skip[i]; skipped {
					if err := any(w.r.store).(DeadLetterer[Tx]).DeadLetter(ctx, tx, w.name, e, cause); err != nil {
						return fmt.Errorf("dead-letter event %s at %v: %w", e.ID, e.Position, err)
					}
					continue
				}
				if err := w.handle(ctx, tx, e); err != nil {
					return &handlerError{index: i, err: err}
				}
				if flusher != nil && isolate {
					if err := flusher.Flush(ctx); err != nil {
						return &handlerError{index: i, err: err}
					}
				}
			}
			if flusher != nil {
				if err := flusher.Flush(ctx); err != nil {
					return &handlerError{index: -1, err: err}
				}
			}
			return nil
		})
		if err == nil {
			d := time.Since(start)
			w.update(func(st *Status) {
				st.Tracking, st.Position, st.LastProgress = next, next.Reached(), time.Now()
			})
			for i := range batch {
				if cause, skipped := skip[i]; skipped {
					obs.EventDeadLettered(w.name, batch[i], cause)
				}
			}
			obs.BatchCommitted(w.name, len(batch)-len(skip), d, next)
			w.r.wm.Set(w.name, next) // last, so waiters see status and reports up to date
			if retries > 0 {
				w.mu.Lock()
				to := StateCatchingUp
				if w.caughtUp {
					to = StateLive
				}
				w.mu.Unlock()
				w.setState(to, nil)
			}
			return 0, nil, true
		}
		if ctx.Err() != nil {
			return outcomeEnded, ctx.Err(), false
		}
		var he *handlerError
		switch {
		case errors.As(err, &he) && he.index < 0 && len(batch)-len(skip) > 1 && !isolate:
			isolate = true // a queued statement failed: re-run event by event to find its event
			continue
		case errors.As(err, &he):
			if he.index < 0 {
				he.index = lastUnskipped(len(batch), skip)
			}
			e := batch[he.index]
			ferr := fmt.Errorf("projection %q: event %s (%s) at %v in stream %q revision %d: %w", w.name, e.ID, e.Type, e.Position, e.Stream, e.Revision, he.err)
			switch {
			case pol.Kind == PolicySkip:
				obs.EventFailed(w.name, e, he.err, string(PolicySkip))
				skip[he.index] = he.err
				continue
			case pol.Kind == PolicyRetry && retries < pol.Retries:
				retries++
				obs.EventFailed(w.name, e, he.err, string(PolicyRetry))
				w.setState(StateRetrying, ferr)
				if !sleep(ctx, pb.delay()) {
					return outcomeEnded, ctx.Err(), false
				}
				continue
			}
			obs.EventFailed(w.name, e, he.err, string(PolicyStop))
			w.update(func(st *Status) {
				st.Failed = &Failure{Position: e.Position, EventID: e.ID, Type: e.Type, Stream: e.Stream, Revision: e.Revision, Error: he.err.Error()}
			})
			return outcomeStopped, ferr, false
		case errors.Is(err, tracking.ErrConflict):
			obs.Error(w.name, "conflict", err)
			return outcomeStopped, fmt.Errorf("projection %q: %w", w.name, err), false
		case errors.Is(err, tracking.ErrPositionTooLarge):
			obs.Error(w.name, "store", err)
			return outcomeStopped, fmt.Errorf("projection %q: %w", w.name, err), false
		default:
			obs.Error(w.name, "store", err)
			return outcomeTransient, fmt.Errorf("projection %q: commit batch: %w", w.name, err), false
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// handle calls the projection's handler, turning a panic into an error so that a poison event
// is treated by the error policy instead of ending the process.
func (w *worker[Tx]) handle(ctx context.Context, tx Tx, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return w.p.Handle(ctx, tx, e)
}

// lastUnskipped is the index of the last event of a batch of n that is not in skip.
func lastUnskipped(n int, skip map[int]error) int {
	for i := n - 1; i > 0; i-- {
		if _, ok := skip[i]; !ok {
			return i
		}
	}
	return 0
}
