package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
)

// renewingSource is a projection.Source and Header over a KurrentDB client that it replaces when
// the client reports its connection closed: a client that exhausts its discovery attempts
// while the server is down stays closed for good, so a long outage would otherwise never end.
type renewingSource struct {
	newClient func() (*kurrentdb.Client, error)
	log       *zap.Logger

	mu     sync.Mutex
	client *kurrentdb.Client
	src    *kurrent.Source
	gen    int
	closed bool
}

var (
	_ projection.Source = (*renewingSource)(nil)
	_ projection.Header = (*renewingSource)(nil)
)

func newRenewingSource(client *kurrentdb.Client, newClient func() (*kurrentdb.Client, error), log *zap.Logger) *renewingSource {
	return &renewingSource{newClient: newClient, log: log, client: client, src: kurrent.New(client, kurrent.Options{})}
}

func (r *renewingSource) current() (*kurrent.Source, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.src, r.gen
}

// check replaces the client of generation gen when err says its connection is closed.
func (r *renewingSource) check(gen int, err error) {
	var ke *kurrentdb.Error
	if !errors.As(err, &ke) || ke.Code() != kurrentdb.ErrorCodeConnectionClosed {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || gen != r.gen {
		return // already replaced
	}
	c, nerr := r.newClient()
	if nerr != nil {
		r.log.Warn("cannot make a new KurrentDB client", zap.Error(nerr))
		return
	}
	old := r.client
	r.client, r.src, r.gen = c, kurrent.New(c, kurrent.Options{}), r.gen+1
	r.log.Warn("KurrentDB client connection closed; using a new client", zap.Error(err))
	go func() { _ = old.Close() }()
}

// Subscribe implements projection.Source.
func (r *renewingSource) Subscribe(ctx context.Context, topics []string, from tracking.State) (projection.Subscription, error) {
	src, gen := r.current()
	sub, err := src.Subscribe(ctx, topics, from)
	if err != nil {
		r.check(gen, err)
		return nil, err
	}
	return &renewingSub{Subscription: sub, r: r, gen: gen}, nil
}

// Head implements projection.Header.
func (r *renewingSource) Head(ctx context.Context) (tracking.Position, time.Time, error) {
	src, gen := r.current()
	p, t, err := src.Head(ctx)
	if err != nil {
		r.check(gen, err)
	}
	return p, t, err
}

// Close closes the current client.
func (r *renewingSource) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.client.Close()
}

type renewingSub struct {
	projection.Subscription
	r   *renewingSource
	gen int
}

func (s *renewingSub) Next(ctx context.Context) (projection.Message, error) {
	m, err := s.Subscription.Next(ctx)
	if err != nil {
		s.r.check(s.gen, err)
	}
	return m, err
}
