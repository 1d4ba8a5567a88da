package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// fastGroup are membership options with short intervals, for tests.
var fastGroup = postgres.MembershipOptions{HeartbeatInterval: 200 * time.Millisecond, MemberTimeout: time.Second, TakeoverGrace: 600 * time.Millisecond}

// replica is a member of a group whose runners only hold their leases: for each projection, a
// goroutine acquires it through the Balancer, holds it until the lease ends, releases it and
// starts again.
type replica struct {
	id     string
	pool   *pgxpool.Pool // the membership's
	group  *postgres.Membership
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	leading  map[string]bool
	acquired int
	causes   []error // why each lease ended, other than the replica stopping
}

func startReplica(t *testing.T, schema, id string, projections []string, opts postgres.MembershipOptions) *replica {
	t.Helper()
	pool := pgtest.Pool(t, schema)
	group, err := postgres.NewMembership(pool, id, projections, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{id: id, pool: pool, group: group, leading: map[string]bool{}}
	b := postgres.NewBalancer(leaderTestElector(t, schema, 200*time.Millisecond), group)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { group.Run(ctx, nil) })
	for _, p := range projections {
		r.wg.Go(func() { r.lead(ctx, b, p) })
	}
	t.Cleanup(r.stop)
	return r
}

func (r *replica) lead(ctx context.Context, b *postgres.Balancer, p string) {
	for ctx.Err() == nil {
		lead, release, err := b.Acquire(ctx, p)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.leading[p] = true
		r.acquired++
		r.mu.Unlock()
		<-lead.Done()
		r.mu.Lock()
		delete(r.leading, p)
		if ctx.Err() == nil {
			r.causes = append(r.causes, context.Cause(lead))
		}
		r.mu.Unlock()
		release()
	}
}

// stop ends the replica as a clean shutdown does: leases released, row deleted.
func (r *replica) stop() {
	r.cancel()
	r.wg.Wait()
}

// kill ends the replica as a crash does: its membership connections close first, so its row
// stays, and its locks are freed.
func (r *replica) kill() {
	r.pool.Close()
	r.stop()
}

func (r *replica) led() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.leading))
}

func (r *replica) counts() (acquired int, causes []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acquired, slices.Clone(r.causes)
}

// shares waits until the replicas lead want projections each and every projection has exactly
// one leader.
func shares(t *testing.T, timeout time.Duration, want []int, rs ...*replica) {
	t.Helper()
	var last string
	err := poll.Wait(timeout, func() error {
		seen := map[string]string{}
		last = ""
		ok := true
		for i, r := range rs {
			led := r.led()
			last += fmt.Sprintf("%s=%v ", r.id, led)
			ok = ok && len(led) == want[i]
			for _, p := range led {
				if other, dup := seen[p]; dup {
					return fmt.Errorf("%s led by %s and %s", p, other, r.id)
				}
				seen[p] = r.id
			}
		}
		if !ok {
			return errors.New(last)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("want shares %v: %v", want, err)
	}
}

func sixProjections() []string {
	return []string{"orders", "invoices", "customers", "stock", "shipments", "payments"}
}

func migratedSchema(t *testing.T) string {
	t.Helper()
	schema := pgtest.NewSchema(t)
	if err := postgres.New(pgtest.Pool(t, schema), postgres.Options{}).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return schema
}

// Three replicas started together share six projections two each, and then nothing moves.
// (Replicas that start more than a heartbeat apart may move leases as each joins; the
// end-to-end test starts real daemons together.)
func TestBalancerSharesEvenlyAndHoldsStill(t *testing.T) {
	t.Parallel()
	schema := migratedSchema(t)
	ps := sixProjections()
	a := startReplica(t, schema, "a", ps, fastGroup)
	b := startReplica(t, schema, "b", ps, fastGroup)
	c := startReplica(t, schema, "c", ps, fastGroup)
	shares(t, 10*time.Second, []int{2, 2, 2}, a, b, c)
	time.Sleep(2 * fastGroup.HeartbeatInterval) // a handover seen by its giver only is over
	var acquired, ended [3]int
	for i, r := range []*replica{a, b, c} {
		var causes []error
		acquired[i], causes = r.counts()
		ended[i] = len(causes)
	}
	time.Sleep(10 * fastGroup.HeartbeatInterval)
	for i, r := range []*replica{a, b, c} {
		n, causes := r.counts()
		if n != acquired[i] || len(causes) != ended[i] {
			t.Errorf("replica %s: %d leases acquired and %d ended while settled: %v", r.id, n-acquired[i], len(causes)-ended[i], causes[ended[i]:])
		}
	}
	// Every replica names the same leader for each projection.
	poll.UntilNil(t, 5*time.Second, "every member knows the leaders", func() error {
		want := map[string]string{}
		for _, r := range []*replica{a, b, c} {
			for _, p := range r.led() {
				want[p] = r.id
			}
		}
		for _, r := range []*replica{a, b, c} {
			if got := r.group.Leaders(); !maps.Equal(got, want) {
				return fmt.Errorf("member %s says %v, want %v", r.id, got, want)
			}
		}
		// And so does the table, to any process.
		got, err := postgres.GroupLeaders(context.Background(), pgtest.Pool(t, schema), fastGroup.MemberTimeout)
		if err != nil || !maps.Equal(got, want) {
			return fmt.Errorf("projector_members says %v (%v), want %v", got, err, want)
		}
		return nil
	})
	if n, ok := a.group.Live(); !ok || n != 3 {
		t.Errorf("live members = %d, %v; want 3", n, ok)
	}
}

// A replica that joins takes its share from the others, which end those leases as handed over;
// one that leaves cleanly gives its share back at once.
func TestBalancerMovesLeasesOnJoinAndLeave(t *testing.T) {
	t.Parallel()
	schema := migratedSchema(t)
	ps := sixProjections()
	a := startReplica(t, schema, "a", ps, fastGroup)
	shares(t, 10*time.Second, []int{6}, a)
	b := startReplica(t, schema, "b", ps, fastGroup)
	shares(t, 10*time.Second, []int{3, 3}, a, b)
	c := startReplica(t, schema, "c", ps, fastGroup)
	shares(t, 10*time.Second, []int{2, 2, 2}, a, b, c)
	for _, r := range []*replica{a, b} {
		_, causes := r.counts()
		for _, err := range causes {
			if !errors.Is(err, postgres.ErrHandedOver) {
				t.Errorf("replica %s: a lease ended with %v, want a handover", r.id, err)
			}
		}
	}
	if _, causes := a.counts(); len(causes) != 4 { // 6 → 3 → 2
		t.Errorf("replica a handed over %d leases, want 4", len(causes))
	}
	c.stop()
	shares(t, 10*time.Second, []int{3, 3}, a, b)
	if err := poll.Wait(5*time.Second, func() error {
		if n, _ := a.group.Live(); n != 2 {
			return fmt.Errorf("%d live members", n)
		}
		return nil
	}); err != nil {
		t.Errorf("after c left: %v", err)
	}
}

// A member that has died keeps its row until MemberTimeout, but its share is taken after
// TakeoverGrace by the members the assignment without it picks, and does not move again when
// its row turns dead.
func TestBalancerTakesOverFromADeadMember(t *testing.T) {
	t.Parallel()
	schema := migratedSchema(t)
	ps := sixProjections()
	slow := fastGroup
	slow.MemberTimeout = 3 * time.Second // the dead row stays live long after the grace
	a := startReplica(t, schema, "a", ps, slow)
	b := startReplica(t, schema, "b", ps, slow)
	c := startReplica(t, schema, "c", ps, slow)
	shares(t, 10*time.Second, []int{2, 2, 2}, a, b, c)
	time.Sleep(5 * slow.HeartbeatInterval) // every member has seen every projection held
	dead := c.led()
	died := time.Now()
	c.kill()
	shares(t, 10*time.Second, []int{3, 3}, a, b)
	took := time.Since(died)
	var rows int
	if err := pgtest.Pool(t, schema).QueryRow(context.Background(), `SELECT count(*) FROM projector_members WHERE member_id = 'c'`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("the dead member's rows: %d, %v; want its row still there", rows, err)
	}
	if took < slow.TakeoverGrace || took >= slow.MemberTimeout {
		t.Errorf("took %v to take over, want between the grace %v and the member timeout %v", took, slow.TakeoverGrace, slow.MemberTimeout)
	}
	t.Logf("the dead member's projections %v were taken %v after it died", dead, took)
	// Leases a and b ended before now (a replica that started first hands over part of its
	// share as the others join) are not counted: only those that end after.
	na, ca := a.counts()
	nb, cb := b.counts()
	time.Sleep(slow.MemberTimeout + 4*slow.HeartbeatInterval) // its row turns dead
	na2, ca2 := a.counts()
	nb2, cb2 := b.counts()
	if na2 != na || nb2 != nb || len(ca2) != len(ca) || len(cb2) != len(cb) {
		t.Errorf("leases moved again when the dead row expired: a acquired %d→%d, ended since %v; b acquired %d→%d, ended since %v",
			na, na2, ca2[len(ca):], nb, nb2, cb2[len(cb):])
	}
}

// A projection assigned to a member that never takes it is led by another member after the
// grace, and stays there.
func TestBalancerLeavesNothingUnled(t *testing.T) {
	t.Parallel()
	schema := migratedSchema(t)
	ps := sixProjections()
	a := startReplica(t, schema, "a", ps, fastGroup)
	// b says it runs the six projections but runs none of them.
	idle, err := postgres.NewMembership(pgtest.Pool(t, schema), "b", ps, fastGroup)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { idle.Run(ctx, nil) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	shares(t, 10*time.Second, []int{6}, a)
	n, _ := a.counts()
	time.Sleep(10 * fastGroup.HeartbeatInterval)
	if n2, causes := a.counts(); n2 != n || len(causes) != 0 {
		t.Errorf("leases moved to a member that does not take them: %d→%d, %v", n, n2, causes)
	}
}

// A database without the membership table (not migrated yet) has no leaders, and no error.
func TestGroupLeadersBeforeMigrate(t *testing.T) {
	t.Parallel()
	got, err := postgres.GroupLeaders(context.Background(), pgtest.Pool(t, pgtest.NewSchema(t)), 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("GroupLeaders = %v, %v; want none", got, err)
	}
}
