// Package daemon holds the parts of the projector daemon that join the runtime to its HTTP
// interface: the head poller, the status provider /readyz and the metrics read, and the HTTP
// server's life cycle.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/backoff"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

// HeadPoller keeps the last known head of $all, polling a projection.Header.
type HeadPoller struct {
	projection.NopObserver // but BatchCommitted, which raises the head

	header   projection.Header
	interval time.Duration
	log      *zap.Logger

	mu   sync.Mutex
	head uint64
	ok   bool
	read time.Time // when the last poll succeeded
	err  error
}

// NewHeadPoller returns a poller of header every interval (default 1s).
func NewHeadPoller(header projection.Header, interval time.Duration, log *zap.Logger) *HeadPoller {
	if interval <= 0 {
		interval = time.Second
	}
	return &HeadPoller{header: header, interval: interval, log: log, err: errors.New("KurrentDB: head not read yet")}
}

// Run polls until ctx ends.
func (h *HeadPoller) Run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads the head once.
func (h *HeadPoller) Poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pos, _, err := h.header.Head(pctx)
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if h.err == nil && h.log != nil {
			h.log.Warn("cannot read the head of $all", zap.Error(err))
		}
		h.err = fmt.Errorf("KurrentDB: %w", err)
		return
	}
	if h.err != nil && h.ok && h.log != nil {
		h.log.Info("reading the head of $all again", zap.Uint64("head", pos.Commit))
	}
	h.err = nil
	h.read = time.Now()
	if !h.ok || pos.Commit > h.head {
		h.head = pos.Commit
	}
	h.ok = true
}

// Saw raises the known head to position when a projection has got that far between two
// polls (the head of $all is at least every position a projection reached), so that a status
// never shows a projection past the head. It does nothing until a poll has read the head.
func (h *HeadPoller) Saw(position uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ok && position > h.head {
		h.head = position
	}
}

// BatchCommitted implements projection.Observer: the head is at least the batch's position.
func (h *HeadPoller) BatchCommitted(b projection.CommittedBatch) { h.Saw(b.State.Reached()) }

// Head returns the last known head commit position; ok is false until one is known.
func (h *HeadPoller) Head() (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head, h.ok
}

// Read returns when the head was last read successfully; zero until it is. While polls fail,
// Head keeps the last head, which grows as old as this says.
func (h *HeadPoller) Read() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.read
}

// Err returns the error of the last poll, nil when it succeeded.
func (h *HeadPoller) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Provider implements httpapi.Provider and metrics.Source for a daemon.
type Provider struct {
	names  []string
	runner *current // the daemon's runner, whose status it reports once there is one; nil for none
	mu     sync.Mutex
	head   *HeadPoller
	checks []func(ctx context.Context) error
	// rebuilds reports the versions building; nil for none.
	rebuilds func() map[string]httpapi.RebuildJSON
	group    Group
}

func (p *Provider) setGroup(g Group) {
	p.mu.Lock()
	p.group = g
	p.mu.Unlock()
}

// Members implements metrics.MembersSource: the live members of the scale-out group; ok is
// false without a group or until it has been read.
func (p *Provider) Members() (int, bool) {
	p.mu.Lock()
	g := p.group
	p.mu.Unlock()
	if g == nil {
		return 0, false
	}
	return g.Live()
}

// NewProvider returns a provider for the projections named names, which it reports as
// starting.
func NewProvider(names []string, head *HeadPoller) *Provider {
	return &Provider{names: names, head: head}
}

// AddCheck adds a connectivity check Connected runs (e.g. a PostgreSQL ping).
func (p *Provider) AddCheck(check func(ctx context.Context) error) {
	p.mu.Lock()
	p.checks = append(p.checks, check)
	p.mu.Unlock()
}

// Statuses implements httpapi.Provider: the runner's status once there is one; until then,
// every projection starting. A configured projection the runner does not run for the moment (a
// new version of it is taking over) is starting too: it never drops out of the list, and a wait
// for it blocks until the new version answers rather than finding no such projection.
func (p *Provider) Statuses() []projection.Status {
	if p.runner != nil {
		if sts, ok := p.runner.statuses(); ok {
			return withConfigured(sts, p.names)
		}
	}
	out := make([]projection.Status, len(p.names))
	for i, n := range p.names {
		out[i] = projection.Status{Name: n, State: projection.StateStarting}
	}
	return out
}

// withConfigured returns sts with a starting status for each of names it lacks.
func withConfigured(sts []projection.Status, names []string) []projection.Status {
	for _, n := range names {
		if !slices.ContainsFunc(sts, func(s projection.Status) bool { return s.Name == n }) {
			sts = append(sts, projection.Status{Name: n, State: projection.StateStarting})
		}
	}
	return sts
}

// SetHead sets the head poller Head and Connected read.
func (p *Provider) SetHead(h *HeadPoller) {
	p.mu.Lock()
	p.head = h
	p.mu.Unlock()
}

func (p *Provider) headPoller() *HeadPoller {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.head
}

// Head implements httpapi.Provider.
func (p *Provider) Head() (uint64, bool) {
	if h := p.headPoller(); h != nil {
		return h.Head()
	}
	return 0, false
}

// HeadRead implements httpapi.Provider.
func (p *Provider) HeadRead() time.Time {
	if h := p.headPoller(); h != nil {
		return h.Read()
	}
	return time.Time{}
}

// Connected implements httpapi.Provider: the head poller's last result and every check.
func (p *Provider) Connected(ctx context.Context) error {
	var errs []error
	if h := p.headPoller(); h != nil {
		if err := h.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	p.mu.Lock()
	checks := append([]func(context.Context) error(nil), p.checks...)
	p.mu.Unlock()
	for _, c := range checks {
		if err := c(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Retry calls fn until it succeeds or ctx ends, backing off exponentially from min to max
// (jittered) between attempts and logging each failure with what.
func Retry(ctx context.Context, log *zap.Logger, what string, min, max time.Duration, fn func(ctx context.Context) error) error {
	bo := backoff.New(min, max)
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info(what+": connected", zap.Int("attempts", attempt))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next()
		log.Warn(what+": failed; retrying", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("backoff", d))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
