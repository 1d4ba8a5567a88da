// Package fanout is a projection.Source that shares reads of $all among the subscriptions of one
// process, so that each event is read and decoded once however many projections (and
// partitions) follow the log, instead of once per subscription.
//
// A Source decorates another one (source/kurrent in the daemon). Its primary shared read is one
// subscription of the underlying Source to the topics of the open subscriptions (and
// Options.Topics), from the state of the subscriber that started it. Its messages go into a ring
// of Options.Window entries that every attached subscriber reads at its own cursor, keeping of
// them only what its own filtered subscription would deliver: events of its topics that are not
// done according to its state nor already delivered, checkpoints past the last one it delivered,
// and one caught-up message. Each subscriber keeps its coverage (see coverage), so it never
// delivers an event twice, whichever read brought it.
//
// A subscriber attaches to the primary shared read when the read has not yet passed, or still
// keeps in its ring, every position the subscriber has not been through, and the subscriber is
// not more than Options.MaxLead ahead of a read still catching up (which would hold it back
// while it reads that stretch). When the read does not read all its topics but the subscriber
// is near it (within MaxLead), the subscriber starts a new primary shared read of the topics in
// use, from its own state; the subscribers of the old read move to the new one as soon as they
// can attach to it, and the old one ends with its last subscriber. A subscriber that starts when
// no shared read exists starts one. Otherwise it reads on its own subscription of the underlying
// Source, as without this package, and after each message it receives there it tries again:
// once its own read reaches the shared read's ring it attaches, reading the ring from the last
// entry it has not been through, and closes its own.
//
// A slow subscriber holds the shared read back (backpressure): the ring drops its oldest entry
// only once every attached subscriber has read it. A subscriber that has taken nothing for
// Options.StallAfter while the read waits on it (a projection retrying a failing batch, for
// instance) is detached: it goes on with its own subscription from what it has been through, and
// may attach again later. Memory is thus bounded by the ring, and a stuck projection holds the
// others back for StallAfter at most.
//
// The shared read's failure is the last entry of its ring: every attached subscriber's Next
// returns it once it has read the entries before it, and the runner resubscribes. The read ends
// when its last subscriber closes; a subscriber's Close (or the end of the context it was
// started with) releases what it holds and waits for the goroutines it ends.
//
// Events are shared: the projection.Event values (and their Data and Metadata) that several
// subscribers deliver are the same, which projection.Event's contract allows (read-only).
package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// Default option values.
const (
	DefaultWindow     = 8192
	DefaultStallAfter = 2 * time.Second
	DefaultMaxLead    = 1 << 20
)

// Options tune a Source.
type Options struct {
	// Topics are topics every shared read subscribes to besides those of the open
	// subscriptions (none by default).
	Topics []string
	// Window is how many messages the shared read keeps, for subscribers that attach behind it
	// and for the slowest subscriber's lag (default DefaultWindow).
	Window int
	// StallAfter is how long a subscriber may take nothing while the shared read waits on it
	// before it is detached onto its own subscription (default DefaultStallAfter).
	StallAfter time.Duration
	// MaxLead is how far ahead of a shared read still catching up a subscriber may be, in
	// bytes of the log (the unit of commit positions), and yet attach to it, waiting for the
	// read to reach it rather than reading that stretch on its own (default DefaultMaxLead).
	// Further ahead, it reads on its own until the shared read is live.
	MaxLead uint64
}

// Source shares the reads of an underlying projection.Source among its subscriptions. It is
// safe for concurrent use.
type Source struct {
	under projection.Source
	opts  Options

	mu   sync.Mutex
	hub  *hub           // the primary shared read, which subscribers attach to; nil when none
	open map[string]int // the topics of the open subscriptions, with how many have each
}

var errClosed = errors.New("fanout: subscription closed")

// New returns a Source sharing the reads of under. It also implements projection.Header and
// projection.Prober when under does, passing those calls to under.
func New(under projection.Source, opts Options) projection.Source {
	s := newSource(under, opts)
	h, isHeader := under.(projection.Header)
	p, isProber := under.(projection.Prober)
	switch {
	case isHeader && isProber:
		return struct {
			*Source
			projection.Header
			projection.Prober
		}{s, h, p}
	case isHeader:
		return struct {
			*Source
			projection.Header
		}{s, h}
	case isProber:
		return struct {
			*Source
			projection.Prober
		}{s, p}
	}
	return s
}

func newSource(under projection.Source, opts Options) *Source {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = DefaultStallAfter
	}
	if opts.MaxLead == 0 {
		opts.MaxLead = DefaultMaxLead
	}
	return &Source{under: under, opts: opts, open: map[string]int{}}
}

// Subscribe implements projection.Source: it attaches the subscription to the shared read, or
// starts a new one (see place), or else gives it its own subscription of the underlying Source
// until it can attach.
func (s *Source) Subscribe(ctx context.Context, topics []string, from tracking.State) (projection.Subscription, error) {
	if len(topics) == 0 {
		return s.under.Subscribe(ctx, topics, from) // the underlying Source says what is wrong
	}
	w := newSubscription(s, ctx, topics, from)
	s.mu.Lock()
	s.use(w.list, 1)
	started, attached := s.place(w)
	s.mu.Unlock()
	var err error
	switch {
	case started != nil:
		err = s.start(ctx, started, w)
	case !attached:
		var own projection.Subscription
		if own, err = s.under.Subscribe(ctx, topics, from); err == nil {
			s.mu.Lock()
			w.own = own
			s.mu.Unlock()
		}
	}
	if err != nil {
		s.mu.Lock()
		s.use(w.list, -1)
		s.mu.Unlock()
		return nil, err
	}
	w.watch()
	return w, nil
}

// start subscribes h's read, for its creator w, whose ctx bounds the subscribing. On failure h
// ends with the error, which the subscribers that attached meanwhile get from Next.
func (s *Source) start(ctx context.Context, h *hub, w *subscription) error {
	unbind := context.AfterFunc(ctx, h.cancel)
	sub, err := s.under.Subscribe(h.ctx, h.list, h.start)
	if !unbind() && err == nil {
		_ = sub.Close()
		err = ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		h.push(entry{err: fmt.Errorf("fanout: shared read of %d topics after %v: %w", len(h.list), h.start, err), before: h.cov.last})
		close(h.done)
		h.leave(w)
		return err
	}
	h.underlying = sub
	go h.run(sub)
	return nil
}
