package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/projector-dev/projector/tracking"
)

// The kinds of Observer.Error.
const (
	kindSource     = "source"
	kindStore      = "store"
	kindConflict   = "conflict"
	kindLeadership = "leadership"
	kindHandler    = "handler"      // a retried handler error (reported through EventFailed)
	kindDropped    = "subscription" // a running subscription ended (reported through SubscriptionRestarted)
)

// worker runs one projection.
type worker[Tx any] struct {
	r      *Runner[Tx]
	p      Projection[Tx]
	name   string
	topics []string
	opts   ProjectionOptions
	ctl    chan command           // operator commands for a stopped projection; capacity 1
	resets chan *resetRequest[Tx] // Runner.Reset's requests, taken while leading

	// Used by the worker goroutine only.
	skip    *Failure          // an operator's Skip, applied when the failed event is delivered again
	reset   *resetRequest[Tx] // a reset taken by consume, for leading to run
	flushes bool              // the store's transactions are Flushers
	live    bool              // the subscription has caught up

	mu       sync.Mutex
	st       Status
	caughtUp bool
	phase    RunState // the state to show when no fault is being retried
	fault    string   // the kind of the fault being retried; "" when none
	pending  bool     // a command is queued on ctl
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

// setState publishes the run state and reports a change to the Observer.
func (w *worker[Tx]) setState(to RunState, err error) {
	w.mu.Lock()
	from := w.st.State
	w.st.State = to
	switch {
	case to != StateRetrying && to != StateStopped:
		w.st.Error = ""
	case err != nil:
		w.st.Error = err.Error()
	}
	w.mu.Unlock()
	if from != to {
		w.r.opts.Observer.StateChanged(w.name, from, to, err)
	}
}

// enter sets the normal run state. While a fault is being retried the published state stays
// retrying, so that a repeated attempt is not reported as a change; recovered publishes it.
func (w *worker[Tx]) enter(s RunState) {
	w.mu.Lock()
	w.phase = s
	faulty := w.fault != ""
	w.mu.Unlock()
	if !faulty {
		w.setState(s, nil)
	}
}

// failure shows the projection retrying after a fault of kind. The Observer hears of the fault
// when it begins or changes kind, and of a permanent one at every attempt.
func (w *worker[Tx]) failure(kind string, err error) {
	w.mu.Lock()
	report := w.fault == "" || family(w.fault) != family(kind) || errors.Is(err, ErrPermanent)
	w.fault = kind
	w.mu.Unlock()
	if report {
		switch kind {
		case kindDropped:
			w.r.opts.Observer.SubscriptionRestarted(w.name, err)
		case kindHandler:
		default:
			w.r.opts.Observer.Error(w.name, kind, err)
		}
	}
	w.setState(StateRetrying, err)
}

// family groups the kinds of faults that one outage causes in turn (a dropped subscription,
// then failing subscribes), so that it is reported once.
func family(kind string) string {
	if kind == kindDropped {
		return kindSource
	}
	return kind
}

// recovered ends the fault being retried, if any, and publishes the normal state.
func (w *worker[Tx]) recovered() {
	w.mu.Lock()
	had := w.fault != ""
	w.fault = ""
	ph := w.phase
	w.mu.Unlock()
	if had {
		w.setState(ph, nil)
	}
}

func (w *worker[Tx]) faultIs(kind string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fault == kind
}

func (w *worker[Tx]) update(f func(st *Status)) {
	w.mu.Lock()
	f(&w.st)
	w.mu.Unlock()
}

// outcome says how a session, or a commit, ended.
type outcome int

const (
	outcomeOK        outcome = iota // committed; go on
	outcomeEnded                    // Run's context ended
	outcomeLost                     // the lease ended
	outcomeTransient                // retry after a backoff
	outcomeStopped                  // halt the projection until Resume or Skip
	outcomeReset                    // run the reset in w.reset, then start again
)

type result struct {
	out  outcome
	kind string // for outcomeTransient: the Observer.Error kind
	err  error
}

// delay is the backoff before the next attempt after err: the longest one for a permanent
// error.
func delay(bo *backoff, err error) time.Duration {
	if errors.Is(err, ErrPermanent) {
		return bo.longest()
	}
	return bo.delay()
}

// run leads the projection (or waits as a standby) until ctx ends. hard outlives ctx by the
// drain timeout; leases and commits run under it.
func (w *worker[Tx]) run(ctx, hard context.Context) {
	obs := w.r.opts.Observer
	bo := backoff{min: w.r.opts.MinBackoff, max: w.r.opts.MaxBackoff}
	defer func() {
		w.mu.Lock()
		w.st.Leader, w.st.OldestPending, w.caughtUp, w.fault = false, time.Time{}, false, ""
		w.mu.Unlock()
		w.setState(StateDone, nil)
	}()
	for ctx.Err() == nil {
		lead, release, ok := w.acquire(ctx, hard, &bo)
		if !ok {
			continue
		}
		w.update(func(st *Status) { st.Leader = true })
		lost := w.leading(ctx, lead, &bo)
		release()
		w.mu.Lock()
		w.st.Leader, w.st.OldestPending, w.st.Failed, w.caughtUp, w.fault = false, time.Time{}, nil, false, ""
		w.phase = StateStandby
		w.mu.Unlock()
		if lost != nil && ctx.Err() == nil {
			err := fmt.Errorf("projection %q: %w", w.name, lost)
			obs.Error(w.name, kindLeadership, err)
			w.setState(StateStandby, err)
		}
	}
}

// acquire waits as a standby until this process leads the projection. ok is false when ctx
// ended or acquiring failed (after a backoff).
func (w *worker[Tx]) acquire(ctx, hard context.Context, bo *backoff) (lead context.Context, release func(), ok bool) {
	l := w.r.opts.Leader
	if l == nil {
		return hard, func() {}, true
	}
	w.enter(StateStandby)
	// The lease must outlive ctx by the drain timeout (it derives from hard), but waiting for it
	// must end with ctx.
	actx, cancel := context.WithCancel(hard)
	stop := context.AfterFunc(ctx, cancel)
	lead, rel, err := l.Acquire(actx, w.name)
	if !stop() {
		if err == nil {
			rel()
		}
		cancel()
		return nil, nil, false
	}
	if err != nil {
		cancel()
		err = fmt.Errorf("projection %q: acquire the leadership: %w", w.name, err)
		w.failure(kindLeadership, err)
		sleep(ctx, delay(bo, err))
		return nil, nil, false
	}
	if w.faultIs(kindLeadership) {
		w.recovered()
	}
	return lead, func() { rel(); cancel() }, true
}

// leading runs sessions while the lease lasts, retrying transient faults and waiting for an
// operator's command while stopped. It returns the cause when the lease was lost, nil when ctx
// ended.
func (w *worker[Tx]) leading(ctx, lead context.Context, bo *backoff) error {
	lostCause := func(err error) error {
		if lead.Err() != nil {
			return context.Cause(lead)
		}
		if err == nil {
			err = ErrLeadershipLost
		}
		return err
	}
	for {
		res := w.session(ctx, lead, bo)
		switch res.out {
		case outcomeEnded, outcomeOK:
			return nil
		case outcomeLost:
			return lostCause(res.err)
		case outcomeTransient:
			w.mu.Lock()
			w.caughtUp = false // unknown until the subscription catches up again
			w.mu.Unlock()
			w.failure(res.kind, res.err)
			t := time.NewTimer(delay(bo, res.err))
			select {
			case <-t.C:
			case req := <-w.resets:
				t.Stop()
				if w.runReset(ctx, lead, req) == nil {
					bo.reset()
				}
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-lead.Done():
				t.Stop()
				return lostCause(nil)
			}
		case outcomeReset:
			req := w.reset
			w.reset = nil
			if w.runReset(ctx, lead, req) == nil {
				bo.reset()
			}
		case outcomeStopped:
			w.mu.Lock()
			for len(w.ctl) > 0 { // a command left from an earlier stop that ended otherwise
				<-w.ctl
			}
			w.pending, w.fault = false, ""
			w.mu.Unlock()
			w.setState(StateStopped, res.err)
		stopped:
			for {
				select {
				case c := <-w.ctl:
					w.mu.Lock()
					w.pending = false
					failed := w.st.Failed
					w.st.Failed = nil
					w.mu.Unlock()
					if c == commandSkip {
						w.skip = failed
					}
					bo.reset()
					break stopped
				case req := <-w.resets:
					if w.runReset(ctx, lead, req) == nil {
						bo.reset()
						break stopped
					}
					// A failed reset changed nothing: the projection stays stopped.
				case <-ctx.Done():
					return nil
				case <-lead.Done():
					return lostCause(nil)
				}
			}
		}
	}
}

// resetRequest is a Runner.Reset call waiting for the worker.
type resetRequest[Tx any] struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx Tx) error
	done chan error // capacity 1: the worker never blocks on the answer
}

// runReset runs req while the projection is paused (no session runs, its subscription is
// closed, its lease held) and answers it. In one store transaction it runs req.fn and rewinds
// tracking from the committed state to the projection's start; then the watermark is reset,
// the status shows the start and any failure is cleared. On error nothing changed.
func (w *worker[Tx]) runReset(ctx, lead context.Context, req *resetRequest[Tx]) error {
	err := w.rewind(ctx, lead, req)
	req.done <- err
	return err
}

func (w *worker[Tx]) rewind(ctx, lead context.Context, req *resetRequest[Tx]) error {
	if ctx.Err() != nil {
		return fmt.Errorf("reset %q: the runner is shutting down", w.name)
	}
	// The transaction runs under the lease (the store checks it before committing) and ends
	// with the caller's context or a shutdown.
	rctx, cancel := context.WithCancel(lead)
	defer cancel()
	defer context.AfterFunc(req.ctx, cancel)()
	defer context.AfterFunc(ctx, cancel)()
	prev, _, err := w.r.store.Load(rctx, w.name)
	if err != nil {
		return fmt.Errorf("reset %q: load tracking: %w", w.name, err)
	}
	start, _, err := w.startState(rctx)
	if err != nil {
		return fmt.Errorf("reset %q: %w", w.name, err)
	}
	err = w.r.store.Apply(rctx, w.name, prev, start, func(ctx context.Context, tx Tx) error {
		if req.fn != nil {
			if err := req.fn(ctx, tx); err != nil {
				return fmt.Errorf("reset the view: %w", err)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("not committing the reset: %w", context.Cause(ctx))
		}
		return nil
	})
	if err != nil {
		if lead.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return fmt.Errorf("reset %q: rewind from %v to %v: %w", w.name, prev, start, err)
	}
	w.skip = nil
	w.r.wm.Reset(w.name)
	w.mu.Lock()
	w.st.Tracking, w.st.Position, w.st.Failed, w.st.OldestPending = start, start.Reached(), nil, time.Time{}
	w.st.LastProgress = time.Now()
	w.caughtUp, w.fault = false, ""
	w.mu.Unlock()
	w.r.wm.Set(w.name, start)
	return nil
}

// failed classifies a store or source error of kind: the end of ctx or of the lease, or a
// transient failure to retry.
func (w *worker[Tx]) failed(ctx, lead context.Context, kind string, err error) result {
	switch {
	case ctx.Err() != nil:
		return result{out: outcomeEnded, err: err}
	case lead.Err() != nil || errors.Is(err, ErrLeadershipLost):
		return result{out: outcomeLost, err: err}
	}
	return result{out: outcomeTransient, kind: kind, err: err}
}

// session loads the tracked state, subscribes and consumes until something ends it.
func (w *worker[Tx]) session(ctx, lead context.Context, bo *backoff) result {
	if ctx.Err() != nil {
		return result{out: outcomeEnded}
	}
	w.enter(StateStarting)
	// Reading tracking and the subscription end with ctx (a shutdown must not wait for an
	// unreachable server); only commits outlive it, under the lease, by the drain timeout.
	work, cancel := context.WithCancel(lead)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	state, ok, err := w.r.store.Load(work, w.name)
	if err != nil {
		return w.failed(ctx, lead, kindStore, fmt.Errorf("projection %q: load tracking: %w", w.name, err))
	}
	if !ok {
		var kind string
		if state, kind, err = w.initial(work); err != nil {
			return w.failed(ctx, lead, kind, err)
		}
	}
	w.r.wm.Set(w.name, state)
	w.update(func(st *Status) { st.Tracking, st.Position = state, state.Reached() })

	sub, err := w.r.source.Subscribe(work, w.topics, state)
	if err != nil {
		return w.failed(ctx, lead, kindSource, fmt.Errorf("projection %q: subscribe after %v: %w", w.name, state, err))
	}
	w.enter(StateCatchingUp)
	return w.consume(ctx, lead, work, sub, state, bo)
}

// startState computes the state of the projection's configured start.
func (w *worker[Tx]) startState(ctx context.Context) (tracking.State, string, error) {
	var s tracking.State
	switch w.opts.Start.Kind {
	case StartAfter:
		s.Last = w.opts.Start.Position
	case StartEnd:
		head, _, err := w.r.source.(Header).Head(ctx)
		if err != nil {
			return s, kindSource, fmt.Errorf("projection %q: read the head of $all: %w", w.name, err)
		}
		s.Last = head
	}
	return s, "", nil
}

// initial computes and records the state of a projection that has no tracking row.
func (w *worker[Tx]) initial(ctx context.Context) (tracking.State, string, error) {
	s, kind, err := w.startState(ctx)
	if err != nil || s == (tracking.State{}) {
		return s, kind, err
	}
	err = w.r.store.Apply(ctx, w.name, tracking.State{}, s, func(context.Context, Tx) error { return nil })
	if err != nil {
		// A conflict means another instance created the row: the retry reloads it.
		return s, kindStore, fmt.Errorf("projection %q: record the start at %v: %w", w.name, s.Last, err)
	}
	return s, "", nil
}

type received struct {
	m   Message
	err error
}

// handlerError marks an error returned by the projection's handler for batch[index] (-1: the
// final flush of queued statements).
type handlerError struct {
	index int
	err   error
}

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// consume reads sub (under work), batches, and commits, until ctx or the lease ends or something
// fails. When ctx ends it commits what it has (under the lease, which outlives ctx by the drain
// timeout).
func (w *worker[Tx]) consume(ctx, lead, work context.Context, sub Subscription, state tracking.State, bo *backoff) result {
	w.live = false
	msgs, stop := pump(work, sub, max(64, w.opts.BatchSize)) // the next batch arrives while one commits
	defer stop()
	b := &batcher[Tx]{w: w, ctx: ctx, lead: lead, work: work, bo: bo, state: state, batchTimer: stoppedTimer(), cpTimer: stoppedTimer(), probeTimer: stoppedTimer()}
	b.header, _ = w.r.source.(Header)
	b.prober, _ = w.r.source.(Prober)
	defer b.batchTimer.Stop()
	defer b.cpTimer.Stop()
	defer b.probeTimer.Stop()

	for {
		if ctx.Err() != nil {
			return b.drain()
		}
		var res result
		select {
		case <-ctx.Done():
			return b.drain()
		case <-lead.Done():
			return w.failed(ctx, lead, kindLeadership, context.Cause(lead))
		case <-b.batchTimer.C:
			res = b.flush()
		case <-b.cpTimer.C:
			b.cpArmed = false
			res = b.flush()
		case <-b.probeTimer.C:
			res = b.probe()
		case req := <-w.resets:
			// The pending batch is dropped uncommitted: the reset rebuilds from the start.
			w.reset = req
			return result{out: outcomeReset}
		case rc := <-msgs:
			if rc.err != nil {
				if ctx.Err() != nil {
					return b.drain()
				}
				return w.failed(ctx, lead, kindDropped, fmt.Errorf("projection %q: subscription ended: %w", w.name, rc.err))
			}
			switch m := rc.m; m.Kind {
			case EventMessage:
				res = b.event(m.Event)
			case CheckpointMessage:
				res = b.serverCheckpoint(m.Checkpoint)
			case CaughtUpMessage:
				res = b.caughtUpNow()
			default:
				return w.failed(ctx, lead, kindSource, fmt.Errorf("projection %q: subscription: unknown message kind %d", w.name, m.Kind))
			}
		}
		if res.out != outcomeOK {
			return res
		}
	}
}

// pump reads sub into the returned channel, which buffers up to buffer messages, until ctx ends
// or Next fails (that error is the last message). stop ends it, closes sub and waits for it.
func pump(ctx context.Context, sub Subscription, buffer int) (msgs <-chan received, stop func()) {
	subCtx, cancel := context.WithCancel(ctx)
	ch := make(chan received, buffer)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			m, err := sub.Next(subCtx)
			select {
			case ch <- received{m, err}:
			case <-subCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	return ch, func() {
		cancel()
		_ = sub.Close()
		wg.Wait()
	}
}

// batcher is the state of one consume session: the committed tracking state, the events and
// server checkpoint pending on top of it, and the timers that commit them.
type batcher[Tx any] struct {
	w               *worker[Tx]
	ctx, lead, work context.Context
	bo              *backoff
	header          Header // nil when the source reports no head
	prober          Prober // nil when the source cannot probe

	state      tracking.State // committed
	batch      []Event        // pending
	checkpoint uint64         // highest server checkpoint seen (exclusive)
	caughtUp   bool
	lastCommit time.Time
	batchTimer *time.Timer // runs while the batch is not empty
	cpTimer    *time.Timer // runs while cpArmed: a checkpoint waits for CheckpointEvery
	cpArmed    bool
	probeTimer *time.Timer // runs while live with a source that probes (see Prober)
}

// next is the state after committing what is pending.
func (b *batcher[Tx]) next() tracking.State {
	n := b.state
	if len(b.batch) > 0 {
		n.Last = b.batch[len(b.batch)-1].Position
	}
	if b.checkpoint > n.Checkpoint {
		n.Checkpoint = b.checkpoint
	}
	if n.Checkpoint <= n.Last.Commit {
		n.Checkpoint = 0
	}
	return n
}

// flush commits what is pending, if anything.
func (b *batcher[Tx]) flush() result {
	w := b.w
	b.batchTimer.Stop()
	b.cpTimer.Stop()
	b.cpArmed = false
	n := b.next()
	if n == b.state {
		return result{}
	}
	if err := tracking.CheckStorable(n); err != nil {
		err = fmt.Errorf("projection %q: %w", w.name, err)
		w.r.opts.Observer.Error(w.name, kindStore, err)
		return result{out: outcomeStopped, err: err}
	}
	if res := w.commit(b.ctx, b.lead, b.state, n, b.batch); res.out != outcomeOK {
		if res.out == outcomeEnded && len(b.batch) > 0 {
			w.r.opts.Observer.Error(w.name, kindStore, fmt.Errorf("projection %q: shutdown: a batch of %d events was rolled back after the drain timeout: %v", w.name, len(b.batch), res.err))
		}
		return res
	}
	b.state = n
	b.batch = b.batch[:0]
	b.lastCommit = time.Now()
	b.bo.reset()
	b.armProbe()
	return result{}
}

// probeTimeout bounds one probe (a head read and a filtered look-ahead).
const probeTimeout = 5 * time.Second

// armProbe schedules the next probe, when the source can probe and the subscription is live:
// CheckpointEvery after the last commit.
func (b *batcher[Tx]) armProbe() {
	if b.header == nil || b.prober == nil || !b.caughtUp {
		return
	}
	b.probeTimer.Stop()
	b.probeTimer.Reset(max(b.w.r.opts.CheckpointEvery-time.Since(b.lastCommit), time.Millisecond))
}

// probe advances tracking past events the projection ignores when the live subscription says
// nothing about them (see Prober): with nothing pending and no commit for CheckpointEvery, it
// reads the head H of $all, and, only when H lies past the position reached, asks the source
// whether an event of the projection's topics not yet done lies at or before H. If none does,
// the exclusive checkpoint H+1 is committed as a server checkpoint would be. The head is read
// first: events written afterwards lie past H and are delivered by the subscription. A failed
// probe costs nothing but its retry, CheckpointEvery later.
func (b *batcher[Tx]) probe() result {
	if !b.caughtUp || len(b.batch) > 0 || b.cpArmed || b.next() != b.state {
		return result{} // the pending commit re-arms the probe
	}
	if time.Since(b.lastCommit) < b.w.r.opts.CheckpointEvery {
		b.armProbe()
		return result{}
	}
	defer b.armProbe()
	ctx, cancel := context.WithTimeout(b.work, probeTimeout)
	defer cancel()
	head, _, err := b.header.Head(ctx)
	if err != nil || head.IsZero() || head.Commit <= b.state.Reached() {
		return result{} // unreachable (the subscription reports real outages), empty, or done
	}
	found, err := b.prober.Probe(ctx, b.w.topics, b.state, head.Commit)
	if err != nil || found {
		return result{} // the subscription delivers the event found
	}
	return b.serverCheckpoint(head.Commit + 1) // commits at once: CheckpointEvery has passed
}

// drain commits what is pending as the session ends.
func (b *batcher[Tx]) drain() result {
	b.flush() // under the lease, which outlives ctx by the drain timeout
	return result{out: outcomeEnded}
}

// event adds e to the batch, committing when the batch is full, or skips it when a skip
// command names it.
func (b *batcher[Tx]) event(e Event) result {
	w := b.w
	if b.state.Done(e.Position.Commit) || (len(b.batch) > 0 && e.Position.Compare(b.batch[len(b.batch)-1].Position) <= 0) {
		return result{} // already processed: a resume may re-deliver the event at Last
	}
	if f := w.skip; f != nil && e.Position.Compare(f.Position) >= 0 {
		if res := b.flush(); res.out != outcomeOK {
			return res
		}
		w.skip = nil
		if e.ID == f.EventID && e.Position == f.Position {
			n := tracking.State{Last: e.Position}
			if res := w.commit(b.ctx, b.lead, b.state, n, []Event{e}, skipFirst(errors.New(f.Error))); res.out != outcomeOK {
				w.skip = f
				return res
			}
			b.state = n
			return result{}
		}
		w.r.opts.Observer.Error(w.name, kindSource, fmt.Errorf("projection %q: skip of event %s at %v: the subscription delivers event %s at %v instead; nothing was skipped", w.name, f.EventID, f.Position, e.ID, e.Position))
	}
	b.batch = append(b.batch, e)
	if len(b.batch) == 1 {
		b.batchTimer.Reset(w.opts.BatchInterval)
		w.mu.Lock()
		w.st.OldestPending = e.Created
		w.caughtUp = false
		w.mu.Unlock()
	}
	if len(b.batch) >= w.opts.BatchSize {
		return b.flush()
	}
	return result{}
}

// serverCheckpoint records a checkpoint of the server's: it is committed with the next batch,
// or on its own once CheckpointEvery has passed since the last commit.
func (b *batcher[Tx]) serverCheckpoint(cp uint64) result {
	if cp <= b.checkpoint {
		return result{}
	}
	b.checkpoint = cp
	if len(b.batch) > 0 || b.cpArmed || b.next() == b.state {
		return result{} // committed with the batch, or already scheduled, or nothing new
	}
	wait := b.w.r.opts.CheckpointEvery - time.Since(b.lastCommit)
	if b.caughtUp && wait <= 0 {
		return b.flush()
	}
	b.cpTimer.Reset(max(wait, 0))
	b.cpArmed = true
	return result{}
}

// caughtUpNow marks the projection live and commits what is pending.
func (b *batcher[Tx]) caughtUpNow() result {
	w := b.w
	b.caughtUp, w.live = true, true
	w.enter(StateLive)
	if res := b.flush(); res.out != outcomeOK {
		return res
	}
	b.armProbe()
	w.recovered() // the source answers and the store commits (or had nothing to)
	w.mu.Lock()
	w.caughtUp = len(b.batch) == 0
	w.mu.Unlock()
	return result{}
}

// skipFirst is an option of commit: the first event of the batch is not handled but skipped
// with cause (dead-lettered when the store keeps dead letters).
type skipFirst error

// commit applies batch and advances tracking from prev to next, applying the error policy to
// handler failures. A failing batch is re-run flushing after every event to find the culprit
// when the store queues statements; the events before the culprit are then committed once, and
// the policy decides about the culprit. Every successful transaction is reported and published
// at once, so a failure after a partial commit loses nothing (the next session reloads).
func (w *worker[Tx]) commit(ctx, lead context.Context, prev, next tracking.State, batch []Event, skip ...skipFirst) result {
	obs := w.r.opts.Observer
	pol := w.opts.OnError
	pb := backoff{min: pol.MinBackoff, max: pol.MaxBackoff}
	var (
		isolate bool // flush after every event, to find which one a failing statement belongs to
		dead    error
		retries int
		culprit string
	)
	if len(skip) > 0 {
		dead, isolate = skip[0], true
	}
	for {
		res, he := w.try(ctx, lead, prev, next, batch, isolate, dead, true)
		if he == nil {
			if res.out == outcomeOK && retries > 0 {
				w.recovered()
			}
			return res
		}
		if !isolate && w.flushes && len(batch) > 1 {
			isolate = true // the error may surface at a later event than the one that queued it
			continue
		}
		i := he.index
		if i < 0 {
			i = len(batch) - 1
		}
		if i > 0 {
			// Commit the good events before the culprit, once.
			pnext := tracking.State{Last: batch[i-1].Position}
			pres, phe := w.try(ctx, lead, prev, pnext, batch[:i], isolate, dead, false)
			if phe != nil {
				continue // a handler of those events failed this time: isolate again
			}
			if pres.out != outcomeOK {
				return pres
			}
			prev, batch, dead = pnext, batch[i:], nil
		}
		e := batch[0]
		if e.ID != culprit {
			culprit, retries = e.ID, 0
		}
		ferr := fmt.Errorf("projection %q: event %s (%s) at %v in stream %q revision %d: %w", w.name, e.ID, e.Type, e.Position, e.Stream, e.Revision, he.err)
		switch {
		case pol.Kind == PolicySkip:
			obs.EventFailed(w.name, e, he.err, string(PolicySkip))
			dead = he.err
			continue
		case pol.Kind == PolicyRetry && retries < pol.Retries:
			retries++
			obs.EventFailed(w.name, e, he.err, string(PolicyRetry))
			w.failure(kindHandler, ferr)
			if !sleepLeading(ctx, lead, pb.delay()) {
				return w.failed(ctx, lead, kindLeadership, context.Cause(lead))
			}
			continue
		}
		obs.EventFailed(w.name, e, he.err, string(PolicyStop))
		w.update(func(st *Status) {
			st.Failed = &Failure{Position: e.Position, EventID: e.ID, Type: e.Type, Stream: e.Stream, Revision: e.Revision, Error: he.err.Error()}
		})
		return result{out: outcomeStopped, err: ferr}
	}
}

// try runs one transaction of commit. A handler error is returned as he, for commit to apply
// the policy; anything else is classified in res.
// whole says whether the transaction commits everything pending.
func (w *worker[Tx]) try(ctx, lead context.Context, prev, next tracking.State, batch []Event, isolate bool, dead error, whole bool) (res result, he *handlerError) {
	if err := lead.Err(); err != nil {
		return w.failed(ctx, lead, kindLeadership, context.Cause(lead)), nil
	}
	start := time.Now()
	err := w.apply(lead, prev, next, batch, isolate, dead)
	if err == nil {
		w.committed(next, batch, dead, time.Since(start), whole)
		return result{}, nil
	}
	switch {
	case lead.Err() != nil || errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrTransient):
		return w.failed(ctx, lead, kindStore, fmt.Errorf("projection %q: commit: %w", w.name, err)), nil
	case errors.As(err, &he):
		return result{}, he
	case errors.Is(err, tracking.ErrConflict):
		err = fmt.Errorf("projection %q: %w", w.name, err)
		if w.r.opts.Leader != nil {
			// A previous leader committed late (after this process took the lease): the
			// compare-and-set refused the batch; reload the position and go on.
			return w.failed(ctx, lead, kindConflict, err), nil
		}
		// Without leadership another instance is running the projection: stop.
		w.r.opts.Observer.Error(w.name, kindConflict, err)
		return result{out: outcomeStopped, err: err}, nil
	case errors.Is(err, tracking.ErrPositionTooLarge):
		err = fmt.Errorf("projection %q: %w", w.name, err)
		w.r.opts.Observer.Error(w.name, kindStore, err)
		return result{out: outcomeStopped, err: err}, nil
	}
	return w.failed(ctx, lead, kindStore, fmt.Errorf("projection %q: commit: %w", w.name, err)), nil
}

// apply runs batch in one store transaction that advances tracking from prev to next. With
// dead set, batch[0] is skipped with that cause instead of handled: dead-lettered when the
// store keeps dead letters. It refuses to commit once the lease (ctx) has ended.
func (w *worker[Tx]) apply(ctx context.Context, prev, next tracking.State, batch []Event, isolate bool, dead error) error {
	return w.r.store.Apply(ctx, w.name, prev, next, func(ctx context.Context, tx Tx) error {
		flusher, _ := any(tx).(Flusher)
		w.flushes = flusher != nil
		for i, e := range batch {
			if i == 0 && dead != nil {
				dl, ok := any(w.r.store).(DeadLetterer[Tx])
				if !ok {
					continue
				}
				if err := dl.DeadLetter(ctx, tx, w.name, e, dead); err != nil {
					return fmt.Errorf("dead-letter event %s at %v: %w", e.ID, e.Position, err)
				}
				if flusher != nil && isolate {
					if err := flusher.Flush(ctx); err != nil {
						return fmt.Errorf("dead-letter event %s at %v: %w", e.ID, e.Position, err)
					}
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
		if ctx.Err() != nil { // the lease, or the drain time, ended: do not commit
			return fmt.Errorf("not committing the batch: %w", context.Cause(ctx))
		}
		return nil
	})
}

// committed publishes a committed transaction: status, reports, then the watermark.
func (w *worker[Tx]) committed(next tracking.State, batch []Event, dead error, d time.Duration, whole bool) {
	obs := w.r.opts.Observer
	w.mu.Lock()
	w.st.Tracking, w.st.Position, w.st.LastProgress = next, next.Reached(), time.Now()
	if whole {
		w.st.OldestPending = time.Time{}
		w.caughtUp = w.live
	}
	w.mu.Unlock()
	events := len(batch)
	if dead != nil && events > 0 {
		events--
		if _, ok := any(w.r.store).(DeadLetterer[Tx]); ok {
			obs.EventDeadLettered(w.name, batch[0], dead)
		} else {
			obs.EventFailed(w.name, batch[0], dead, string(PolicySkip))
		}
	}
	obs.BatchCommitted(w.name, events, d, next)
	w.recovered()
	w.r.wm.Set(w.name, next) // last, so waiters see status and reports up to date
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
