package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/logging"
	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/internal/tracing"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/fanout"
	"github.com/projector-dev/projector/tracking"
)

// Daemon is the HTTP side of a running projector: the status provider, the metrics and the
// server. It is started first, so /healthz answers (and /readyz says why not ready) while the
// connections are still being made; Run then sets up the runner it reports on and commands.
type Daemon struct {
	log    *zap.Logger
	prov   *Provider
	m      *metrics.Metrics
	srv    *Server
	runner *current
	hist   *historySampler
	trace  *tracing.Tracing
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
	// Tracing makes the spans of the batches and the wait requests; nil means tracing.Off.
	// The caller shuts it down once Run has returned.
	Tracing *tracing.Tracing
	// Versions takes the rebuild and rollback commands; nil when the projections are not
	// versioned (the commands then answer 503).
	Versions httpapi.Versioner
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
	if o.Tracing == nil {
		o.Tracing = tracing.Off()
	}
	d := &Daemon{log: log, runner: newCurrent(log), trace: o.Tracing}
	d.runner.versions = o.Versions
	d.prov = &Provider{names: names, runner: d.runner}
	d.prov.AddCheck(d.runner.connected)
	d.prov.AddCheck(d.runner.shuttingDown)
	d.m = metrics.New(d.prov, nil)
	for _, n := range names {
		d.m.Declare(n)
	}
	api := httpapi.Options{Provider: d.prov, Waiter: d.runner, Controller: d.runner, Parked: d.runner, Metrics: d.m.Handler(), ObserveWait: d.m.ObserveWait, AdminToken: o.AdminToken, MaxWaits: o.MaxWaits, Tracing: o.Tracing}
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
	// Source is the source of $all events. Run shares its reads among the projections (see
	// source/fanout) unless SeparateReads is set.
	Source projection.Source
	// SeparateReads gives each projection its own subscription of Source, as without the
	// shared read (the escape hatch of PROJECTOR_SHARED_READ=off).
	SeparateReads bool
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
	// Live, when set, is called with the set of projections once it is set up, before it runs:
	// it stops and starts projections one by one while Run runs (a new version of one).
	Live func(l *Live[Tx])
	// Restart, when set, ends this Run like the end of ctx does, but without shutting the
	// daemon down: /readyz and the commands keep working, and the caller runs Run again (with
	// the projections' new versions).
	Restart <-chan struct{}
	// Group, when set, is the scale-out group this daemon is a member of: the status names the
	// member leading each projection, and the metrics count the live members.
	Group Group
}

// Group is what the daemon reports of its scale-out group (views/postgres.Membership).
type Group interface {
	// Leaders returns the member id leading each projection, as far as this member knows.
	Leaders() map[string]string
	// Live returns how many members are live, as this member last read it; ok is false until
	// it has read the group once.
	Live() (n int, ok bool)
}

// Run runs the projections of c until ctx ends, reporting to d's metrics, logs and HTTP API,
// and taking the API's resume, skip and reset commands; it returns once every goroutine it
// started has ended (the runner finishes or rolls back the batch in flight within
// c.RunnerOptions.DrainTimeout). Once ctx ends, /readyz answers 503 "shutting down". It returns
// an error only when it cannot start.
func Run[Tx any](ctx context.Context, d *Daemon, c Config[Tx]) error {
	var head *HeadPoller
	if c.Header != nil {
		head = NewHeadPoller(c.Header, c.HeadInterval, d.log)
		d.prov.SetHead(head)
	}
	for _, chk := range c.Checks {
		d.prov.AddCheck(chk)
	}
	opts := c.RunnerOptions
	observers := []projection.Observer{d.m.Observer(), logging.NewObserver(d.log), d.runner.settle}
	if spans := d.trace.Observer(); spans != nil {
		observers = append(observers, spans)
	}
	if head != nil {
		observers = append(observers, head)
	}
	if c.RunnerOptions.Observer != nil {
		observers = append(observers, c.RunnerOptions.Observer)
	}
	opts.Observer = logging.Multi(observers...)
	opts.Leader = c.Leader
	src := c.Source
	if !c.SeparateReads {
		src = fanout.New(src, fanout.Options{})
	}
	runner := projection.NewRunner(src, c.Store, opts)
	live := &Live[Tx]{runner: runner, resets: &resetTable[Tx]{fn: map[string]func(context.Context, Tx) error{}}}
	for _, p := range c.Projections {
		if err := runner.Add(p.Projection, p.Options); err != nil {
			return err
		}
		live.resets.set(p.Projection.Name(), p.Reset)
	}
	standby := &standbyPositions{reader: c.Store, names: map[string]bool{}, pos: map[string]tracking.State{}}
	var w tracking.Waiter = runner
	if c.Waiter != nil {
		w = c.Waiter
	}
	if c.Running != nil {
		c.Running(runner)
	}
	if c.Live != nil {
		c.Live(live)
	}
	if c.Group != nil {
		d.prov.setGroup(c.Group)
	}
	d.runner.start(bound[Tx]{Runner: runner, resets: live.resets, order: newStatusOrder(runner.Status()), standby: standby, group: c.Group}, w)
	drain := opts.DrainTimeout

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var wg sync.WaitGroup
	if h := d.prov.headPoller(); h != nil {
		wg.Go(func() { h.Run(runCtx) })
	}
	wg.Go(func() { standby.run(runCtx, time.Second) })
	ran := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-ran: // Run could not start, or ended with ctx
		}
		if ctx.Err() != nil {
			d.runner.stop()
			d.log.Info("shutting down: finishing or rolling back the batches in flight", zap.Duration("drain_timeout", drain))
		}
	})
	d.log.Info("running", zap.Int("projections", len(c.Projections)))
	if c.Restart != nil {
		wg.Go(func() {
			select {
			case <-c.Restart:
				cancelRun()
			case <-runCtx.Done():
			}
		})
	}
	runErr := runner.Run(runCtx)
	cancelRun()
	close(ran)
	d.runner.ended()
	wg.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fmt.Errorf("runner: %w", runErr)
	}
	if ctx.Err() == nil {
		d.log.Info("projections stopped for a restart")
		return nil
	}
	d.log.Info("stopped")
	return nil
}

// bound is the daemon's projection.Runner with what the daemon adds to it: the projections'
// view resets, and the positions of the projections it does not lead.
type bound[Tx any] struct {
	*projection.Runner[Tx]
	resets  *resetTable[Tx]
	order   statusOrder
	standby *standbyPositions
	group   Group // nil when the daemon is not in a scale-out group
}

// Status returns the runner's status, with the projections this instance does not lead at the
// position their leader has committed, and the member leading each when known.
// A partitioned projection's partitions are filled in one by one, and its entry summed up
// again from them (projection.AggregatePartitions); it is led by the members that lead its
// partitions.
func (b bound[Tx]) Status() []projection.Status {
	b.standby.begin()
	sts := b.standby.fill(b.order.sort(b.Runner.Status()))
	for i := range sts {
		if len(sts[i].Partitions) > 0 {
			sts[i] = projection.AggregatePartitions(sts[i].Name, b.standby.fill(sts[i].Partitions))
		}
	}
	if b.group != nil {
		leaders := b.group.Leaders()
		for i := range sts {
			sts[i].LeaderMember = leaders[sts[i].Name]
			if len(sts[i].Partitions) == 0 {
				continue
			}
			var members []string
			for j := range sts[i].Partitions {
				m := leaders[sts[i].Partitions[j].Name]
				sts[i].Partitions[j].LeaderMember = m
				if m != "" && !slices.Contains(members, m) {
					members = append(members, m)
				}
			}
			sort.Strings(members)
			sts[i].LeaderMember = strings.Join(members, ",")
		}
	}
	return sts
}

// Reset resets projection name online, emptying its view with its Projection.Reset.
func (b bound[Tx]) Reset(ctx context.Context, name string) error {
	return b.Runner.Reset(ctx, name, b.resets.get(name))
}

// standbyPositions keeps the tracked state of the projections this instance does not lead,
// read from the store, so a standby reports where the leader has got.
type standbyPositions struct {
	reader tracking.Reader
	mu     sync.Mutex
	names  map[string]bool // the entries not led here at the last fill
	pos    map[string]tracking.State
}

// begin starts a status: the names not led here are those of its fills.
func (s *standbyPositions) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.names)
}

// fill gives the entries of sts that this process does not lead the position their leader
// has committed, and remembers their names to read them again (a partitioned projection's own
// entry is left to its partitions').
func (s *standbyPositions) fill(sts []projection.Status) []projection.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range sts {
		if sts[i].Leader || len(sts[i].Partitions) > 0 {
			continue
		}
		s.names[sts[i].Name] = true
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
		var names []string
		for n := range s.names {
			names = append(names, n)
		}
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
