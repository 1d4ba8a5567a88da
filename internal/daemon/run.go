package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/logging"
	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Daemon is the HTTP side of a running projector: the status provider, the metrics and the
// server. It is started first, so /healthz answers (and /readyz says why not ready) while the
// connections are still being made.
type Daemon struct {
	log    *zap.Logger
	prov   *Provider
	m      *metrics.Metrics
	srv    *Server
	waiter *lazyWaiter
	logObs *logging.Observer
	ctl    *controller
	hist   *historySampler
}

// Options are the daemon's HTTP settings beyond its address.
type Options struct {
	// AdminToken, when set, is the bearer token the commands (resume, skip, reset) require;
	// empty disables them (they answer 403), which Start logs with how to enable them.
	AdminToken string
	// MaxWaits caps the wait requests served at once (beyond it they answer 503 with
	// Retry-After); zero means no cap.
	MaxWaits int
	// Server tunes the HTTP server's timeouts and limits (zero fields take the defaults).
	Server ServerOptions
	// DeadLetters serves the dead-letter endpoints and counts the dead letters; nil for none.
	DeadLetters DeadLetterStore
}

// commandsDisabled is the line Start logs when the daemon has no admin token.
const commandsDisabled = "the command endpoints POST /v1/projections/{name}/resume, /skip and /reset are disabled: " +
	"set " + config.EnvAdminToken + " or " + config.EnvAdminTokenFile + " to enable them with a bearer token"

// Start serves the HTTP API on addr for the projections named names, reporting them as
// starting until Run.
func Start(log *zap.Logger, addr string, names []string, o Options) (*Daemon, error) {
	if log == nil {
		log = zap.NewNop()
	}
	d := &Daemon{log: log, prov: NewProvider(names, nil), waiter: &lazyWaiter{}, logObs: logging.NewObserver(log)}
	d.ctl = &controller{log: log, logObs: d.logObs, changes: newStateChanges()}
	d.prov.AddCheck(d.waiter.connected)
	d.prov.AddCheck(d.ctl.stopping)
	d.m = metrics.New(d.prov, nil)
	for _, n := range names {
		d.m.Declare(n)
	}
	api := httpapi.Options{Provider: d.prov, Waiter: d.waiter, Controller: d.ctl, Metrics: d.m.Handler(), ObserveWait: d.m.ObserveWait, AdminToken: o.AdminToken, MaxWaits: o.MaxWaits}
	d.operatorSurface(o, &api)
	srv, err := Listen(addr, httpapi.New(api), o.Server, o.MaxWaits)
	if err != nil {
		d.stopHistory()
		return nil, err
	}
	d.srv = srv
	commands := "enabled: they require the admin token"
	if o.AdminToken == "" {
		commands = "disabled: no admin token"
		log.Info(commandsDisabled, zap.String("addr", srv.Addr()))
	}
	log.Info("serving HTTP", zap.String("addr", srv.Addr()), zap.Strings("projections", names), zap.String("commands", commands))
	return d, nil
}

// AddCheck adds a connectivity check /readyz runs.
func (d *Daemon) AddCheck(check func(ctx context.Context) error) { d.prov.AddCheck(check) }

// Addr is the address the HTTP server listens on.
func (d *Daemon) Addr() string { return d.srv.Addr() }

// Shutdown stops the HTTP server, letting requests in flight finish until ctx ends.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopHistory()
	return d.srv.Shutdown(ctx)
}

// Projection is a projection with the options it runs with.
type Projection[Tx any] struct {
	Projection projection.Projection[Tx]
	Options    projection.ProjectionOptions
	// Reset empties the projection's view inside the reset's transaction (the HTTP API's
	// reset); nil resets only its tracking.
	Reset func(ctx context.Context, tx Tx) error
}

// Config is what Run joins together.
type Config[Tx any] struct {
	Source projection.Source
	// Header reads the head of $all for the head and lag metrics; nil for none.
	Header projection.Header
	Store  projection.Store[Tx]
	// Waiter answers the HTTP wait API; nil means the runner's in-process watermark. A
	// PostgreSQL daemon passes its store, so waits work on standbys too.
	Waiter      tracking.Waiter
	Leader      projection.Leader
	Projections []Projection[Tx]
	// Checks are connectivity checks for /readyz (e.g. a PostgreSQL ping).
	Checks []func(ctx context.Context) error
	// HeadInterval is how often the head is polled (default 1s).
	HeadInterval time.Duration
	// RunnerOptions are the runner's options beyond the observer and leader, such as
	// DrainTimeout.
	RunnerOptions projection.Options
	// Running, when set, is called with the runner once it is set up, before it runs.
	Running func(r *projection.Runner[Tx])
}

// Run runs the projections of c until ctx ends, reporting to d's metrics, logs and HTTP API,
// and taking the API's resume and skip commands; it returns once every goroutine it started has
// ended (the runner finishes or rolls back the batch in flight within
// c.RunnerOptions.DrainTimeout). Once ctx ends, /readyz answers 503 "shutting down". It returns
// an error only when it cannot start.
func Run[Tx any](ctx context.Context, d *Daemon, c Config[Tx]) error {
	if c.Header != nil {
		d.prov.SetHead(NewHeadPoller(c.Header, c.HeadInterval, d.log))
	}
	for _, chk := range c.Checks {
		d.prov.AddCheck(chk)
	}
	opts := c.RunnerOptions
	opts.Observer = logging.Multi(d.m.Observer(), d.logObs, d.ctl.changes)
	opts.Leader = c.Leader
	runner := projection.NewRunner(c.Source, c.Store, opts)
	for _, p := range c.Projections {
		if err := runner.Add(p.Projection, p.Options); err != nil {
			return err
		}
		if st, ok, err := c.Store.Load(ctx, p.Projection.Name()); err == nil && ok {
			d.logObs.SetPosition(p.Projection.Name(), st.Reached())
		}
	}
	standby := &standbyPositions{reader: c.Store, pos: map[string]tracking.State{}}
	d.prov.SetStatus(func() []projection.Status { return standby.fill(runner.Status()) })
	var w tracking.Waiter = runner
	if c.Waiter != nil {
		w = c.Waiter
	}
	d.waiter.set(w)
	if c.Running != nil {
		c.Running(runner)
	}
	d.ctl.set(runner.Resume, runner.Skip)
	resets := make(map[string]func(context.Context, Tx) error, len(c.Projections))
	for _, p := range c.Projections {
		resets[p.Projection.Name()] = p.Reset
	}
	d.ctl.setReset(func(ctx context.Context, name string) error {
		return runner.Reset(ctx, name, resets[name])
	})
	drain := opts.DrainTimeout

	var wg sync.WaitGroup
	if h := d.prov.headPoller(); h != nil {
		wg.Go(func() { h.Run(ctx) })
	}
	wg.Go(func() { standby.run(ctx, time.Second) })
	ran := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-ran: // Run could not start, or ended with ctx
		}
		if ctx.Err() != nil {
			d.ctl.stop()
			d.log.Info("shutting down: finishing or rolling back the batches in flight", zap.Duration("drain_timeout", drain))
		}
	})
	d.log.Info("running", zap.Int("projections", len(c.Projections)))
	runErr := runner.Run(ctx)
	close(ran)
	d.ctl.set(nil, nil)
	d.ctl.setReset(nil)
	wg.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fmt.Errorf("runner: %w", runErr)
	}
	d.log.Info("stopped")
	return nil
}

// controller takes the HTTP API's resume and skip commands to the runner (httpapi.Controller).
type controller struct {
	log     *zap.Logger
	logObs  *logging.Observer
	changes *stateChanges

	mu           sync.Mutex
	resume, skip func(string) error
	reset        func(context.Context, string) error
	shutdown     bool
}

func (c *controller) setReset(reset func(context.Context, string) error) {
	c.mu.Lock()
	c.reset = reset
	c.mu.Unlock()
}

// Reset implements httpapi.Resetter: it empties the projection's view and rewinds it to its
// start online, on the replica that leads it.
func (c *controller) Reset(ctx context.Context, name string) error {
	c.mu.Lock()
	f, down := c.reset, c.shutdown
	c.mu.Unlock()
	switch {
	case down:
		return fmt.Errorf("reset %q: shutting down: %w", name, httpapi.ErrUnavailable)
	case f == nil:
		return fmt.Errorf("reset %q: still connecting to KurrentDB and PostgreSQL: %w", name, httpapi.ErrUnavailable)
	}
	c.logObs.Commanded(name, "reset")
	if err := f(ctx, name); err != nil {
		c.logObs.Commanded(name, "")
		return err
	}
	c.log.Info("projection reset: it rebuilds from its start", zap.String("projection", name))
	return nil
}

// settle bounds how long a command waits for the projection to leave the stopped state, so
// that its answer shows the new state.
const settle = 2 * time.Second

func (c *controller) set(resume, skip func(string) error) {
	c.mu.Lock()
	c.resume, c.skip = resume, skip
	c.mu.Unlock()
}

// stop marks the daemon as shutting down: commands are refused and /readyz fails.
func (c *controller) stop() {
	c.mu.Lock()
	c.shutdown = true
	c.mu.Unlock()
}

func (c *controller) stopping(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown {
		return errors.New("shutting down: finishing or rolling back the batches in flight")
	}
	return nil
}

// Resume implements httpapi.Controller.
func (c *controller) Resume(ctx context.Context, name string) error {
	return c.command(ctx, "resume", name)
}

// Skip implements httpapi.Controller.
func (c *controller) Skip(ctx context.Context, name string) error {
	return c.command(ctx, "skip", name)
}

func (c *controller) command(ctx context.Context, verb, name string) error {
	c.mu.Lock()
	f, down := c.resume, c.shutdown
	if verb == "skip" {
		f = c.skip
	}
	c.mu.Unlock()
	switch {
	case down:
		return fmt.Errorf("%s %q: shutting down: %w", verb, name, httpapi.ErrUnavailable)
	case f == nil:
		return fmt.Errorf("%s %q: still connecting to KurrentDB and PostgreSQL: %w", verb, name, httpapi.ErrUnavailable)
	}
	gen := c.changes.generation(name)
	c.logObs.Commanded(name, verb)
	if err := f(name); err != nil {
		c.logObs.Commanded(name, "")
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	c.changes.waitPast(wctx, name, gen)
	return nil
}

// stateChanges counts the state changes of each projection (a projection.Observer), so that a
// command can wait for the change it causes.
type stateChanges struct {
	projection.NopObserver
	mu      sync.Mutex
	gen     map[string]uint64
	changed chan struct{} // closed and replaced at every change
}

func newStateChanges() *stateChanges {
	return &stateChanges{gen: map[string]uint64{}, changed: make(chan struct{})}
}

// StateChanged implements projection.Observer.
func (s *stateChanges) StateChanged(name string, _, _ projection.RunState, _ error) {
	s.mu.Lock()
	s.gen[name]++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *stateChanges) generation(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen[name]
}

// waitPast waits until projection name has changed state since generation gen, or ctx ends.
func (s *stateChanges) waitPast(ctx context.Context, name string, gen uint64) {
	for {
		s.mu.Lock()
		g, ch := s.gen[name], s.changed
		s.mu.Unlock()
		if g > gen {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// lazyWaiter answers waits once the store is connected; until then waits block (within their
// deadline).
type lazyWaiter struct {
	once  sync.Once
	ready chan struct{}
	mu    sync.Mutex
	w     tracking.Waiter
}

func (l *lazyWaiter) init() { l.once.Do(func() { l.ready = make(chan struct{}) }) }

func (l *lazyWaiter) set(w tracking.Waiter) {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		l.w = w
		close(l.ready)
	}
}

func (l *lazyWaiter) get() tracking.Waiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w
}

func (l *lazyWaiter) connected(context.Context) error {
	if l.get() == nil {
		return errors.New("starting: connecting to the view store")
	}
	return nil
}

// Wait implements tracking.Waiter.
func (l *lazyWaiter) Wait(ctx context.Context, name string, commit uint64) (tracking.State, error) {
	l.init()
	select {
	case <-l.ready:
	case <-ctx.Done():
		return tracking.State{}, ctx.Err()
	}
	return l.get().Wait(ctx, name, commit)
}

// standbyPositions keeps the tracked state of the projections this instance does not lead,
// read from the store, so a standby reports where the leader has got.
type standbyPositions struct {
	reader tracking.Reader
	mu     sync.Mutex
	names  []string
	pos    map[string]tracking.State
}

func (s *standbyPositions) fill(sts []projection.Status) []projection.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = s.names[:0]
	for i := range sts {
		if sts[i].Leader {
			continue
		}
		s.names = append(s.names, sts[i].Name)
		if st, ok := s.pos[sts[i].Name]; ok && st.Reached() > sts[i].Position {
			sts[i].Tracking = st
			sts[i].Position = st.Reached()
		}
	}
	return sts
}

func (s *standbyPositions) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		names := append([]string(nil), s.names...)
		s.mu.Unlock()
		for _, n := range names {
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, ok, err := s.reader.Load(lctx, n)
			cancel()
			if err == nil && ok {
				s.mu.Lock()
				s.pos[n] = st
				s.mu.Unlock()
			}
		}
	}
}
