// Balanced leadership: each replica of a scale-out group leads about its share of the
// projections, as Assign computes it from the membership table, and hands over the others.

package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/projector-dev/projector/projection"
)

// ErrHandedOver is the cause of a lease a Balancer ended because the projection is now
// assigned to another member: a planned move, not a fault. It is projection.ErrHandedOver.
var ErrHandedOver = projection.ErrHandedOver

// Balancer implements projection.Leader for a group of replicas that share the projections:
// a replica acquires (through its Elector, so the advisory lock and the lease check inside
// every batch transaction guard leadership as before) only the projections Assign gives it
// among the live members of its Membership, and ends the lease of a projection assigned to
// another member, with the cause ErrHandedOver, so that member takes it.
//
// Leases move on these events:
//   - A member joins: from its second heartbeat on, it acquires its share; the members that
//     led those projections see it at their next heartbeat and hand them over.
//   - A member stops cleanly: it deletes its row, and the others take its share at their next
//     heartbeat, once its leases are released.
//   - A member dies (its row stays): its connections drop, which frees its locks at once; a
//     projection unled for TakeoverGrace goes to the member Assign picks among the members
//     whose heartbeat is younger than TakeoverGrace, so its share moves after about
//     TakeoverGrace + HeartbeatInterval. When its row turns dead (MemberTimeout), the
//     assignment among the live members picks the same members, so nothing moves again.
//
// A lease is never handed over to a member whose heartbeat is older than TakeoverGrace, so a
// member that stops heartbeating does not pull projections towards itself.
type Balancer struct {
	e *Elector
	m *Membership

	mu     sync.Mutex
	beats  int               // the view the cached assignment is of
	shares map[string]string // Assign among that view's live members
}

var _ projection.Leader = (*Balancer)(nil)

// NewBalancer returns a Balancer that leads through e the projections m's view assigns to m's
// member. m must be running (Membership.Run) for the Balancer to acquire anything.
func NewBalancer(e *Elector, m *Membership) *Balancer { return &Balancer{e: e, m: m} }

// Acquire implements projection.Leader: it blocks as a standby until projectionName is
// assigned to this member and this member holds its lock, then returns a context that carries
// the Lease (see LeaseFromContext) and ends, with the Lease's cause, when leadership is lost
// or released, or with ErrHandedOver once the projection is assigned to another member.
func (b *Balancer) Acquire(ctx context.Context, projectionName string) (context.Context, func(), error) {
	lease, err := b.acquireLease(ctx, projectionName)
	if err != nil {
		return nil, nil, err
	}
	b.m.setLeading(projectionName, true)
	lead, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, lease))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			view, changed := b.m.Watch()
			if to, ok := b.handOverTo(view, projectionName); ok {
				cancel(fmt.Errorf("projection %q is assigned to member %q: %w", projectionName, to, ErrHandedOver))
				return
			}
			select {
			case <-lease.Lost():
				cancel(lease.Err())
				return
			case <-lead.Done():
				return
			case <-changed:
			}
		}
	}()
	release := sync.OnceFunc(func() {
		cancel(ErrLeaseReleased)
		<-done
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), b.e.opts.Timeout)
		defer rcancel()
		_ = lease.Release(rctx)
		b.m.setLeading(projectionName, false)
	})
	return lead, release, nil
}

// acquireLease waits until projectionName is for this member to take, then tries its lock
// for as long as it stays so.
func (b *Balancer) acquireLease(ctx context.Context, projectionName string) (*Lease, error) {
	for {
		if err := b.waitEligible(ctx, projectionName); err != nil {
			return nil, err
		}
		ectx, cancel := context.WithCancel(ctx)
		watch := make(chan struct{})
		go func() {
			defer close(watch)
			for {
				view, changed := b.m.Watch()
				if !b.eligible(view, projectionName, time.Now()) {
					cancel()
					return
				}
				select {
				case <-ectx.Done():
					return
				case <-changed:
				}
			}
		}()
		b.m.setWanting(projectionName, true)
		lease, err := b.e.AcquireLease(ectx, projectionName)
		b.m.setWanting(projectionName, false)
		cancel()
		<-watch
		switch {
		case ctx.Err() != nil:
			if err == nil {
				b.releaseNow(ctx, lease)
			}
			return nil, ctx.Err()
		case err != nil && ectx.Err() != nil:
			continue // no longer this member's to take
		case err != nil:
			return nil, err
		}
		view, _ := b.m.Watch()
		if _, move := b.handOverTo(view, projectionName); move {
			b.releaseNow(ctx, lease)
			continue
		}
		return lease, nil
	}
}

func (b *Balancer) releaseNow(ctx context.Context, lease *Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.e.opts.Timeout)
	defer cancel()
	_ = lease.Release(rctx)
}

// waitEligible blocks until projectionName is for this member to take, or ctx ends.
func (b *Balancer) waitEligible(ctx context.Context, projectionName string) error {
	for {
		view, changed := b.m.Watch()
		if b.eligible(view, projectionName, time.Now()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// eligible reports whether this member may try to take projectionName: from its second
// heartbeat on, when the projection is assigned to it among the live members; or, when the
// projection has been unled for TakeoverGrace, when it is assigned to it among the members
// that heartbeat within TakeoverGrace, leaving out the member it is assigned to among the live
// ones (which has not taken it).
func (b *Balancer) eligible(v MembershipView, projectionName string, now time.Time) bool {
	if v.Beats < 2 {
		return false
	}
	shares := b.assigned(v)
	key := balanceKey(shares, projectionName)
	if key != projectionName && b.m.isLeading(key) {
		return true // a version building goes where its projection is led
	}
	assigned := shares[key]
	if assigned == b.m.id {
		return true
	}
	since, unheld := v.UnheldSince[key]
	if !unheld || now.Sub(since) < b.m.opts.TakeoverGrace {
		return false
	}
	var others []MemberRow
	for _, r := range b.fresh(v.Members) {
		if r.ID != assigned {
			others = append(others, r)
		}
	}
	return b.assignee(others, key) == b.m.id
}

// balanceKey is the projection whose assignment projectionName follows among shares: itself,
// or for a version building (NAME@VERSION) its projection NAME, so a build runs where its
// projection is led; when NAME is partitioned (its partitions are the units of shares), where
// its first partition (NAME#0) is led.
func balanceKey(shares map[string]string, projectionName string) string {
	name, _, building := strings.Cut(projectionName, "@")
	if _, ok := shares[name]; building && !ok {
		if first := projection.PartitionName(name, 0); shares[first] != "" {
			return first
		}
	}
	return name
}

// handOverTo returns the member this member should hand projectionName over to: the one it
// is assigned to among the live members, when that is another member whose heartbeat is
// younger than TakeoverGrace and which is waiting to lead it.
func (b *Balancer) handOverTo(v MembershipView, projectionName string) (string, bool) {
	if v.Beats == 0 {
		return "", false
	}
	shares := b.assigned(v)
	to := shares[balanceKey(shares, projectionName)]
	if to == "" || to == b.m.id {
		return "", false
	}
	for _, r := range b.fresh(v.Members) {
		if r.ID == to && slices.Contains(r.Wants, projectionName) {
			return to, true
		}
	}
	return "", false
}

// assigned is the assignment among v's live members, computed once per view (every lease's
// watcher asks at every heartbeat).
func (b *Balancer) assigned(v MembershipView) map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shares == nil || b.beats != v.Beats {
		b.beats, b.shares = v.Beats, assignAmong(v.Members)
	}
	return b.shares
}

// assignee is the member Assign gives projectionName to among rows.
func (b *Balancer) assignee(rows []MemberRow, projectionName string) string {
	return assignAmong(rows)[projectionName]
}

// assignAmong is Assign over rows and every projection some row runs.
func assignAmong(rows []MemberRow) map[string]string {
	members := make([]Member, len(rows))
	seen := map[string]bool{}
	var all []string
	for i, r := range rows {
		members[i] = r.Member
		for _, p := range r.Projections {
			if !seen[p] {
				seen[p] = true
				all = append(all, p)
			}
		}
	}
	return Assign(members, all)
}

// fresh are the rows whose heartbeat is younger than TakeoverGrace.
func (b *Balancer) fresh(rows []MemberRow) []MemberRow {
	var out []MemberRow
	for _, r := range rows {
		if r.Age < b.m.opts.TakeoverGrace || r.ID == b.m.id {
			out = append(out, r)
		}
	}
	return out
}
