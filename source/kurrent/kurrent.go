// Package kurrent is the projection.Source that reads KurrentDB's $all log through the official
// Go client: a catch-up subscription filtered on the server by event type, with checkpoints,
// resumed strictly after a projection's tracked position without losing the event a checkpoint
// may point at (KurrentDB #4970, #4990).
//
// A Source does not reconnect by itself: a dropped subscription ends Next with an error, and
// the projection.Runner resubscribes from its committed state with capped exponential backoff
// (the client re-discovers the server on its own after Unavailable). Errors that retrying cannot
// fix (bad credentials, access denied, a request the server rejects as invalid or does not
// support) wrap projection.ErrPermanent, so the runner reports them at every attempt; all others
// (Unavailable, a cut connection, a dropped subscription, a server restart, a deadline) are
// transient.
package kurrent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/internal/redact"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options tune a Source's subscriptions.
type Options struct {
	// MaxSearchWindow is how many events the server considers per read while filtering
	// (default 32, KurrentDB's default).
	MaxSearchWindow int
	// CheckpointInterval is the checkpoint interval multiplier: the server reports a checkpoint
	// every CheckpointInterval × MaxSearchWindow events considered (default 1). While live, the
	// runner does not depend on it to see past events a projection does not subscribe to: it
	// probes (Source.Probe) after projection.Options.CheckpointEvery without a commit.
	CheckpointInterval int
}

// Source subscribes to $all through a KurrentDB client. It is safe for concurrent use.
type Source struct {
	opts Options
	cfg  *kurrentdb.Configuration // set when the Source owns its client (Dial)

	mu     sync.Mutex
	client *kurrentdb.Client
	closed bool
}

var (
	_ projection.Source = (*Source)(nil)
	_ projection.Header = (*Source)(nil)
	_ projection.Prober = (*Source)(nil)
)

// New returns a Source on client, which the caller keeps and closes. The official client
// closes itself for good once it has failed to reach the server MaxDiscoverAttempts times in a
// row (about a second by default), so a Source made by New does not outlive a longer outage;
// Dial makes one that does.
func New(client *kurrentdb.Client, opts Options) *Source {
	if opts.MaxSearchWindow <= 0 {
		opts.MaxSearchWindow = 32
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 1
	}
	return &Source{client: client, opts: opts}
}

// Dial returns a Source that owns a client connected to uri (see NewClient) and replaces it with
// a new one whenever the client reports its connection closed, as it does after failing to
// reach a server that is down, so the runner's retries reach the server once it is back, however
// long the outage. Close the Source to close its client.
func Dial(uri string, copts ClientOptions, opts Options) (*Source, error) {
	cfg, err := clientConfig(uri, copts)
	if err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	s := New(c, opts)
	s.cfg = cfg
	return s, nil
}

// Close closes the client of a Source made by Dial; for one made by New it does nothing (the
// caller owns the client).
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil || s.closed {
		return nil
	}
	s.closed = true
	return s.client.Close()
}

func (s *Source) current() *kurrentdb.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// check replaces c, when the Source owns it and it is still in use, if err says that its
// connection is closed. A failure to make the new client leaves c in place for the next try.
func (s *Source) check(c *kurrentdb.Client, err error) {
	var ke *kurrentdb.Error
	if s.cfg == nil || !errors.As(err, &ke) || ke.Code() != kurrentdb.ErrorCodeConnectionClosed {
		return
	}
	s.mu.Lock()
	if s.closed || s.client != c {
		s.mu.Unlock()
		return
	}
	nc, nerr := newClient(s.cfg)
	if nerr == nil {
		s.client = nc
	}
	s.mu.Unlock()
	if nerr == nil {
		_ = c.Close()
	}
}

// ClientOptions tune NewClient.
type ClientOptions struct {
	// RootCertificates, when not empty, is PEM text of the CAs that sign the server's
	// certificate (as KURRENTDB_ROOT_CERTIFICATES holds it).
	RootCertificates string
	// Logger receives the client's own logs; nil discards them (the runner reports failures
	// through its Observer).
	Logger kurrentdb.LoggingFunc
}

// NewClient connects to the KurrentDB named by uri (a kurrentdb://, kdb://, esdb:// or
// +discover connection string).
func NewClient(uri string, opts ClientOptions) (*kurrentdb.Client, error) {
	cfg, err := clientConfig(uri, opts)
	if err != nil {
		return nil, err
	}
	return newClient(cfg)
}

func clientConfig(uri string, opts ClientOptions) (*kurrentdb.Configuration, error) {
	cfg, err := kurrentdb.ParseConnectionString(uri)
	if err != nil {
		// The parser's errors quote the connection string, password and all.
		return nil, fmt.Errorf("kurrent: connection string: %w", redact.Error(err, uri))
	}
	if strings.TrimSpace(opts.RootCertificates) != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(opts.RootCertificates)) {
			return nil, errors.New("kurrent: root certificates: no PEM certificate found")
		}
		cfg.RootCAs = pool
	}
	cfg.Logger = opts.Logger
	if cfg.Logger == nil {
		cfg.Logger = kurrentdb.NoopLogging()
	}
	return cfg, nil
}

// newClient makes a client on a copy of cfg.
func newClient(cfg *kurrentdb.Configuration) (*kurrentdb.Client, error) {
	c := *cfg
	client, err := kurrentdb.NewClient(&c)
	if err != nil {
		return nil, fmt.Errorf("kurrent: client: %w", err)
	}
	return client, nil
}

// TopicFilter returns the server-side event-type regex matching exactly the given topics: an
// anchored group of quoted alternatives, "^(?:A|B)$", sorted and without duplicates. Quoting
// matters: in the topic "__main__:Dog.Registered" the "." must not match any character.
func TopicFilter(topics []string) (string, error) {
	if len(topics) == 0 {
		return "", errors.New("kurrent: no topics to filter on")
	}
	q := make([]string, 0, len(topics))
	for i, t := range topics {
		if t == "" {
			return "", fmt.Errorf("kurrent: topic %d is empty", i)
		}
		q = append(q, regexp.QuoteMeta(t))
	}
	slices.Sort(q)
	q = slices.Compact(q)
	return "^(?:" + strings.Join(q, "|") + ")$", nil
}

// Subscribe implements projection.Source. It subscribes after the last event from processed,
// or, when from's checkpoint lies past that event, after the last event of $all before the
// checkpoint (never after the checkpoint itself, which may be the position of the next event
// to be written). Events already done according to from are not delivered.
func (s *Source) Subscribe(ctx context.Context, topics []string, from tracking.State) (projection.Subscription, error) {
	regex, err := TopicFilter(topics)
	if err != nil {
		return nil, err
	}
	after := from.Last
	if from.Checkpoint > 0 && from.Checkpoint > from.Last.Commit {
		// A failed lookup only costs a rescan of the filtered region, so it is not fatal.
		if l, ok, err := s.lastBefore(ctx, from.Checkpoint); err == nil && ok && l.Compare(after) > 0 {
			after = l
		}
	}
	var start kurrentdb.AllPosition = kurrentdb.Start{}
	if !after.IsZero() {
		start = kurrentdb.Position{Commit: after.Commit, Prepare: after.Prepare}
	}
	client := s.current()
	sctx, cancel := context.WithCancel(ctx)
	sub, err := client.SubscribeToAll(sctx, kurrentdb.SubscribeToAllOptions{
		From:               start,
		Filter:             &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Regex: regex},
		MaxSearchWindow:    s.opts.MaxSearchWindow,
		CheckpointInterval: s.opts.CheckpointInterval,
	})
	if err != nil {
		cancel()
		s.check(client, err)
		return nil, fmt.Errorf("kurrent: subscribe to $all after %v with filter %s: %w", after, regex, Classify(err))
	}
	w := &subscription{src: s, client: client, sub: sub, cancel: cancel, from: from, out: make(chan item, 64), done: make(chan struct{})}
	w.wg.Go(w.pump)
	return w, nil
}

// Probe implements projection.Prober with a short-lived filtered subscription resumed as
// Subscribe resumes from: it reports true at the first event it delivers at or before through,
// and false once an event past through, a checkpoint past through, or the end of the catch-up
// (which, the head having been read before, lies at or past through) shows that there is none.
func (s *Source) Probe(ctx context.Context, topics []string, from tracking.State, through uint64) (bool, error) {
	sub, err := s.Subscribe(ctx, topics, from)
	if err != nil {
		return false, err
	}
	defer sub.Close()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return false, fmt.Errorf("kurrent: probe for events of %d topics after %v through %d: %w", len(topics), from, through, err)
		}
		switch m.Kind {
		case projection.EventMessage:
			return m.Event.Position.Commit <= through, nil
		case projection.CheckpointMessage:
			if m.Checkpoint > through {
				return false, nil
			}
		case projection.CaughtUpMessage:
			return false, nil
		}
	}
}

// lastBefore returns the position of the last event of $all strictly before commit.
func (s *Source) lastBefore(ctx context.Context, commit uint64) (tracking.Position, bool, error) {
	return s.readBackOne(ctx, kurrentdb.Position{Commit: commit, Prepare: commit})
}

// Head implements projection.Header: the position and creation time of the last event of $all,
// or zero values when $all is empty.
func (s *Source) Head(ctx context.Context) (tracking.Position, time.Time, error) {
	client := s.current()
	rs, err := client.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1)
	if err != nil {
		s.check(client, err)
		return tracking.Position{}, time.Time{}, fmt.Errorf("kurrent: read the head of $all: %w", Classify(err))
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return tracking.Position{}, time.Time{}, nil
	}
	if err != nil || ev == nil || ev.OriginalEvent() == nil {
		return tracking.Position{}, time.Time{}, fmt.Errorf("kurrent: read the head of $all: %w", Classify(orEmpty(err)))
	}
	e := ev.OriginalEvent()
	return tracking.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}, e.CreatedDate.UTC(), nil
}

func (s *Source) readBackOne(ctx context.Context, from kurrentdb.AllPosition) (tracking.Position, bool, error) {
	client := s.current()
	rs, err := client.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: kurrentdb.Backwards, From: from}, 1)
	if err != nil {
		s.check(client, err)
		return tracking.Position{}, false, err
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return tracking.Position{}, false, nil
	}
	if err != nil || ev == nil || ev.OriginalEvent() == nil {
		return tracking.Position{}, false, orEmpty(err)
	}
	p := ev.OriginalEvent().Position
	return tracking.Position{Commit: p.Commit, Prepare: p.Prepare}, true, nil
}

// Classify returns err wrapping projection.ErrPermanent when retrying cannot fix it: the server
// refused the credentials (Unauthenticated) or the account's access (PermissionDenied), rejected
// the request as invalid (InvalidArgument, e.g. a filter), or does not support it
// (Unimplemented). Any other error is returned as it is, and counts as transient.
func Classify(err error) error {
	if err == nil || errors.Is(err, projection.ErrPermanent) {
		return err
	}
	var ke *kurrentdb.Error
	if errors.As(err, &ke) {
		switch ke.Code() {
		case kurrentdb.ErrorCodeUnauthenticated, kurrentdb.ErrorCodeAccessDenied, kurrentdb.ErrorCodeUnsupportedFeature:
			return fmt.Errorf("%w: %w", projection.ErrPermanent, err)
		}
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.Unimplemented:
		return fmt.Errorf("%w: %w", projection.ErrPermanent, err)
	}
	return err
}

func orEmpty(err error) error {
	if err == nil {
		return errors.New("empty read result")
	}
	return err
}

type item struct {
	m   projection.Message
	err error
}

// subscription adapts a client subscription (whose Recv takes no context) to
// projection.Subscription: one goroutine receives, Next selects on its output and ctx.
type subscription struct {
	src    *Source
	client *kurrentdb.Client
	sub    *kurrentdb.Subscription
	cancel context.CancelFunc
	from   tracking.State
	out    chan item
	conv   converter // used by pump
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func (w *subscription) pump() {
	for {
		ev := w.sub.Recv()
		var it item
		switch {
		case ev.SubscriptionDropped != nil:
			err := ev.SubscriptionDropped.Error
			if err == nil {
				err = io.EOF
			}
			w.src.check(w.client, err)
			it.err = fmt.Errorf("kurrent: subscription dropped: %w", Classify(err))
		case ev.EventAppeared != nil:
			e := ev.EventAppeared.OriginalEvent()
			if e == nil || w.from.Done(e.Position.Commit) {
				continue
			}
			it.m = projection.Message{Kind: projection.EventMessage, Event: w.conv.event(e)}
		case ev.CheckPointReached != nil:
			it.m = projection.Message{Kind: projection.CheckpointMessage, Checkpoint: ev.CheckPointReached.Commit, Time: time.Now().UTC()}
		case ev.CaughtUp != nil:
			it.m = projection.Message{Kind: projection.CaughtUpMessage, Time: ev.CaughtUp.Date}
		default:
			continue // fell behind, or something newer than this client
		}
		select {
		case w.out <- it:
		case <-w.done:
			return
		}
		if it.err != nil {
			return
		}
	}
}

// Next implements projection.Subscription.
func (w *subscription) Next(ctx context.Context) (projection.Message, error) {
	select {
	case it := <-w.out:
		return it.m, it.err
	case <-w.done:
		return projection.Message{}, errors.New("kurrent: subscription closed")
	case <-ctx.Done():
		return projection.Message{}, ctx.Err()
	}
}

// Close implements projection.Subscription; it waits for the receiving goroutine to end.
func (w *subscription) Close() error {
	w.once.Do(func() {
		close(w.done)
		_ = w.sub.Close()
		w.cancel()
		w.wg.Wait()
	})
	return nil
}
