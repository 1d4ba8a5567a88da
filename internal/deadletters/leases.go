package deadletters

import (
	"context"
	"sync"

	"github.com/projector-dev/projector/projection"
)

// Leases is a projection.Leader that remembers the lease each projection holds: it wraps the
// runner's Leader, and Lease returns the lease context of a projection this process leads, so
// that work outside the runner (a replay of dead letters) runs under the same lease.
type Leases struct {
	leader projection.Leader

	mu    sync.Mutex
	held  map[string]*held
	count uint64
}

// held is one lease handed to the runner.
type held struct {
	ctx context.Context
	id  uint64
}

// NewLeases wraps leader; nil means the process leads every projection it runs with no lease
// (the runner's behaviour without a Leader), and Lease then reports none.
func NewLeases(leader projection.Leader) *Leases {
	return &Leases{leader: leader, held: map[string]*held{}}
}

// Acquire implements projection.Leader.
func (l *Leases) Acquire(ctx context.Context, name string) (context.Context, func(), error) {
	if l.leader == nil {
		return ctx, func() {}, nil
	}
	lead, release, err := l.leader.Acquire(ctx, name)
	if err != nil {
		return lead, release, err
	}
	l.mu.Lock()
	l.count++
	h := &held{ctx: lead, id: l.count}
	l.held[name] = h
	l.mu.Unlock()
	return lead, func() {
		l.mu.Lock()
		if cur := l.held[name]; cur != nil && cur.id == h.id {
			delete(l.held, name)
		}
		l.mu.Unlock()
		release()
	}, nil
}

// Lease returns the lease context of projection name while this process leads it: it carries
// the lease (a store checks it before committing) and ends when the lease does. A partitioned
// projection's dead letters go with its first partition: its lease is that of NAME#0.
func (l *Leases) Lease(name string) (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[name]
	if !ok {
		h, ok = l.held[projection.PartitionName(name, 0)]
	}
	if !ok || h.ctx.Err() != nil {
		return nil, false
	}
	return h.ctx, true
}
