// The daemon's runner, once Run has set it up: it answers the HTTP API's status, waits and
// commands, and says why it cannot while there is none.

package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// runner is what the daemon uses of its projection.Runner, whatever the store's transaction
// type (see bound).
type runner interface {
	Status() []projection.Status
	Resume(name string) error
	Skip(name string) error
	Reset(ctx context.Context, name string) error
	ParkedStreams(ctx context.Context, name string) ([]projection.ParkedStream, error)
	ResumeStream(ctx context.Context, name, stream string) (int, error)
	SkipStream(ctx context.Context, name, stream string) (int, error)
}

// current holds the daemon's runner: none until Run has set it up. It is the HTTP API's
// Controller and Waiter, and gives the Provider the runner's status.
type current struct {
	log    *zap.Logger
	settle *settler

	mu       sync.Mutex
	r        runner          // nil until Run has set it up; kept once it has ended, for its status
	waiter   tracking.Waiter // answers waits once r is set
	ready    chan struct{}   // closed once r is set
	running  bool            // r takes commands: set up, and its Run has not returned
	stopping bool            // shutting down: commands are refused and /readyz fails

	versions httpapi.Versioner // takes rebuild and rollback; nil when the projections are not versioned
}

func newCurrent(log *zap.Logger) *current {
	return &current{log: log, settle: newSettler(), ready: make(chan struct{})}
}

// start sets the runner r, with w answering waits, and has it take commands.
func (c *current) start(r runner, w tracking.Waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r == nil {
		close(c.ready)
	}
	c.r, c.waiter, c.running = r, w, true
}

// ended stops the runner taking commands, once its Run has returned; its status stays.
func (c *current) ended() {
	c.mu.Lock()
	c.running = false
	c.mu.Unlock()
}

// stop marks the daemon as shutting down: commands are refused and /readyz fails.
func (c *current) stop() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
}

// statuses returns the runner's status of every projection; ok is false until there is a
// runner.
func (c *current) statuses() (sts []projection.Status, ok bool) {
	c.mu.Lock()
	r := c.r
	c.mu.Unlock()
	if r == nil {
		return nil, false
	}
	return r.Status(), true
}

// connected is a /readyz check: it fails until the runner is set up, which needs the view
// store.
func (c *current) connected(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r == nil {
		return errors.New("starting: connecting to the view store")
	}
	return nil
}

// shuttingDown is a /readyz check: it fails once the daemon is shutting down.
func (c *current) shuttingDown(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return errors.New("shutting down: finishing or rolling back the batches in flight")
	}
	return nil
}

// Wait implements tracking.Waiter with the waiter Run chose; until the runner is set up, waits
// block (within ctx).
func (c *current) Wait(ctx context.Context, name string, commit uint64) (tracking.State, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return tracking.State{}, ctx.Err()
	}
	c.mu.Lock()
	w := c.waiter
	c.mu.Unlock()
	return w.Wait(ctx, name, commit)
}

// commandable returns the runner to take cmd for projection name, or an error wrapping
// httpapi.ErrUnavailable saying why none can.
func (c *current) commandable(cmd projection.Command, name string) (runner, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopping:
		return nil, fmt.Errorf("%s %q: shutting down: %w", cmd, name, httpapi.ErrUnavailable)
	case !c.running:
		return nil, fmt.Errorf("%s %q: still connecting to KurrentDB and PostgreSQL: %w", cmd, name, httpapi.ErrUnavailable)
	}
	return c.r, nil
}

// settle bounds how long a command waits for the projection to leave the stopped state, so
// that its answer shows the new state.
const settle = 2 * time.Second

// Resume implements httpapi.Controller.
func (c *current) Resume(ctx context.Context, name string) error {
	return c.restart(ctx, projection.CommandResume, name)
}

// Skip implements httpapi.Controller.
func (c *current) Skip(ctx context.Context, name string) error {
	return c.restart(ctx, projection.CommandSkip, name)
}

// restart gives a stopped projection the command cmd (resume or skip) and waits, up to settle,
// for the state change it causes.
func (c *current) restart(ctx context.Context, cmd projection.Command, name string) error {
	r, err := c.commandable(cmd, name)
	if err != nil {
		return err
	}
	changed, forget := c.settle.expect(name)
	defer forget()
	give := r.Resume
	if cmd == projection.CommandSkip {
		give = r.Skip
	}
	if err := give(name); err != nil {
		return err
	}
	t := time.NewTimer(settle)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// Reset implements httpapi.Controller: it empties the projection's view and rewinds it to its
// start online, on the replica that leads it.
func (c *current) Reset(ctx context.Context, name string) error {
	r, err := c.commandable(projection.CommandReset, name)
	if err != nil {
		return err
	}
	if err := r.Reset(ctx, name); err != nil {
		return err
	}
	c.log.Info("projection reset: it rebuilds from its start", zap.String("projection", name))
	return nil
}

// ParkedStreams implements httpapi.Parked: it reads the store, on any replica.
func (c *current) ParkedStreams(ctx context.Context, name string) ([]projection.ParkedStream, error) {
	c.mu.Lock()
	r := c.r
	c.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("parked streams of %q: still connecting to PostgreSQL: %w", name, httpapi.ErrUnavailable)
	}
	return r.ParkedStreams(ctx, name)
}

// ResumeStream implements httpapi.Parked, on the replica that leads the projection.
func (c *current) ResumeStream(ctx context.Context, name, stream string) (int, error) {
	r, err := c.commandable(projection.CommandResumeStream, name)
	if err != nil {
		return 0, err
	}
	n, err := r.ResumeStream(ctx, name, stream)
	if err == nil {
		c.log.Info("parked stream resumed: its parked events were replayed", zap.String("projection", name), zap.String("stream", stream), zap.Int("events", n))
	}
	return n, err
}

// SkipStream implements httpapi.Parked, on the replica that leads the projection.
func (c *current) SkipStream(ctx context.Context, name, stream string) (int, error) {
	r, err := c.commandable(projection.CommandSkipStream, name)
	if err != nil {
		return 0, err
	}
	n, err := r.SkipStream(ctx, name, stream)
	if err == nil {
		c.log.Info("parked stream skipped: its parked events moved to the dead letters", zap.String("projection", name), zap.String("stream", stream), zap.Int("events", n))
	}
	return n, err
}

// settler wakes the commands waiting for the state change they cause: the next change of their
// projection that reports an operator's command (a projection.Observer).
type settler struct {
	projection.NopObserver
	mu      sync.Mutex
	waiting map[string][]chan struct{}
}

func newSettler() *settler { return &settler{waiting: map[string][]chan struct{}{}} }

// expect returns a channel closed at the next commanded change of projection name; forget
// stops waiting.
func (s *settler) expect(name string) (changed <-chan struct{}, forget func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiting[name] = append(s.waiting[name], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		ws := s.waiting[name]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(s.waiting, name)
			return
		}
		s.waiting[name] = ws
	}
}

// StateChanged implements projection.Observer.
func (s *settler) StateChanged(c projection.StateChange) {
	if c.Command == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiting[c.Projection] {
		close(ch)
	}
	delete(s.waiting, c.Projection)
}
