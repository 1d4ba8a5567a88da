// The membership table of a scale-out group: registration, heartbeats, the live members and
// which projections' leadership locks are held, read back at every heartbeat.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of MembershipOptions.
const (
	DefaultHeartbeatInterval = time.Second
	DefaultMemberTimeout     = 5 * time.Second
	DefaultTakeoverGrace     = 3 * time.Second
)

// MembershipOptions tune a Membership. Zero values take the defaults.
type MembershipOptions struct {
	// Namespace is the Elector's namespace (ElectorOptions.Namespace), needed to tell which
	// projections' locks are held; empty is the current schema.
	Namespace string
	// HeartbeatInterval is how often the member updates its row and reads the others (default
	// 1s).
	HeartbeatInterval time.Duration
	// MemberTimeout is how old a heartbeat may be before its member counts as dead (default
	// 5s). It bounds how long the share of a member that died stays assigned to it.
	MemberTimeout time.Duration
	// TakeoverGrace is how long a projection may stay unled before the member the assignment
	// would pick among the members that heartbeat within TakeoverGrace takes it (default 3s):
	// the share of a member killed without deleting its row moves after about TakeoverGrace,
	// before MemberTimeout. It also keeps a leader from handing a projection over to a member
	// whose heartbeat is older than that.
	TakeoverGrace time.Duration
	// Timeout bounds every statement (default 5s).
	Timeout time.Duration
}

func (o MembershipOptions) withDefaults() MembershipOptions {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.MemberTimeout <= 0 {
		o.MemberTimeout = DefaultMemberTimeout
	}
	if o.TakeoverGrace <= 0 {
		o.TakeoverGrace = DefaultTakeoverGrace
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultLeaderTimeout
	}
	return o
}

// MemberRow is a live member as its row shows it.
type MemberRow struct {
	Member
	StartedAt   time.Time
	HeartbeatAt time.Time
	// Age is how old the heartbeat was when read, by the database's clock.
	Age time.Duration
	// Leads are the projections the member led at its last heartbeat; Wants those it was
	// waiting to lead.
	Leads, Wants []string
}

// MembershipView is what the last heartbeat read.
type MembershipView struct {
	// Beats counts the heartbeats that succeeded so far; a member acquires leases from its
	// second on, so members that start together see each other before they choose.
	Beats int
	// Members are the live members (heartbeat younger than MemberTimeout), sorted by id; the
	// member itself is always among them once it has beaten.
	Members []MemberRow
	// Held tells, per projection this member runs, whether some session holds its leadership
	// lock; UnheldSince is when this member first saw an unheld one unheld (zero when held).
	Held        map[string]bool
	UnheldSince map[string]time.Time
}

// Membership keeps one daemon's row in projector_members up to date and reads the group back
// (see Run). Create it with NewMembership; it is safe for concurrent use.
type Membership struct {
	pool        *pgxpool.Pool
	id          string
	projections []string
	opts        MembershipOptions

	mu      sync.Mutex
	view    MembershipView
	changed chan struct{} // closed and replaced after every heartbeat
	leads   map[string]bool
	wants   map[string]bool
	keys    map[string]int64 // the projections' lock keys, once the namespace is known
}

// NewMembership returns the membership of member id, which runs projections, in the database
// of pool (whose current schema holds projector_members).
func NewMembership(pool *pgxpool.Pool, id string, projections []string, opts MembershipOptions) (*Membership, error) {
	if id == "" {
		return nil, errors.New("postgres: membership: empty member id")
	}
	return &Membership{
		pool: pool, id: id, projections: slices.Compact(slices.Sorted(slices.Values(projections))),
		opts: opts.withDefaults(), changed: make(chan struct{}), leads: map[string]bool{}, wants: map[string]bool{},
	}, nil
}

// ID is this member's id.
func (m *Membership) ID() string { return m.id }

// Options are the options in force, defaults filled in.
func (m *Membership) Options() MembershipOptions { return m.opts }

// Run registers the member and heartbeats every HeartbeatInterval until ctx ends, then
// deletes the member's row, so the others take its share at their next heartbeat. A failed
// heartbeat is retried at the next interval (report, when set, is told of each failure and
// of each recovery with a nil error); the view stays as last read meanwhile.
func (m *Membership) Run(ctx context.Context, report func(error)) {
	defer m.leave()
	t := time.NewTicker(m.opts.HeartbeatInterval)
	defer t.Stop()
	var failing bool
	for {
		err := m.Beat(ctx)
		if ctx.Err() != nil {
			return
		}
		if report != nil && (err != nil || failing) {
			report(err)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Beat updates the member's row and reads the group back once.
func (m *Membership) Beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	if err := m.loadKeys(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	first := m.view.Beats == 0
	leads, wants := sortedKeys(m.leads), sortedKeys(m.wants)
	m.mu.Unlock()
	secs := func(d time.Duration) float64 { return d.Seconds() }
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO projector_members AS m (member_id, projections, leads, wants) VALUES ($1, $2, $3, $4)
		ON CONFLICT (member_id) DO UPDATE SET heartbeat_at = now(), projections = EXCLUDED.projections,
			leads = EXCLUDED.leads, wants = EXCLUDED.wants, started_at = CASE WHEN $5 THEN now() ELSE m.started_at END`,
		m.id, m.projections, leads, wants, first)
	b.Queue(`DELETE FROM projector_members WHERE heartbeat_at < now() - make_interval(secs => $1)`, secs(12*m.opts.MemberTimeout))
	rowsQ := b.Queue(`SELECT member_id, started_at, heartbeat_at, extract(epoch FROM now() - heartbeat_at)::float8, projections, leads, wants
		FROM projector_members WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY member_id`, secs(m.opts.MemberTimeout))
	var members []MemberRow
	rowsQ.Query(func(rows pgx.Rows) error {
		var err error
		members, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (MemberRow, error) {
			var mr MemberRow
			var age float64
			err := r.Scan(&mr.ID, &mr.StartedAt, &mr.HeartbeatAt, &age, &mr.Projections, &mr.Leads, &mr.Wants)
			mr.Age = time.Duration(age * float64(time.Second))
			return mr, err
		})
		return err
	})
	var held []int64
	b.Queue(`SELECT ((classid::bigint << 32) | objid::bigint) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Query(func(rows pgx.Rows) error {
		var err error
		held, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err := m.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: membership of %q: heartbeat: %w", m.id, err)
	}
	m.update(members, held)
	return nil
}

// loadKeys computes the projections' lock keys once.
func (m *Membership) loadKeys(ctx context.Context) error {
	m.mu.Lock()
	done := m.keys != nil
	m.mu.Unlock()
	if done {
		return nil
	}
	keys := make(map[string]int64, len(m.projections))
	for _, p := range m.projections {
		k, _, err := leaderKey(ctx, m.pool, m.opts.Namespace, p)
		if err != nil {
			return fmt.Errorf("postgres: membership of %q: %w", m.id, err)
		}
		keys[p] = k
	}
	m.mu.Lock()
	m.keys = keys
	m.mu.Unlock()
	return nil
}

func (m *Membership) update(members []MemberRow, heldKeys []int64) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	isHeld := make(map[int64]bool, len(heldKeys))
	for _, k := range heldKeys {
		isHeld[k] = true
	}
	v := MembershipView{Beats: m.view.Beats + 1, Members: members, Held: map[string]bool{}, UnheldSince: map[string]time.Time{}}
	for p, k := range m.keys {
		v.Held[p] = isHeld[k]
		if !v.Held[p] {
			since := m.view.UnheldSince[p]
			if since.IsZero() {
				since = now
			}
			v.UnheldSince[p] = since
		}
	}
	m.view = v
	close(m.changed)
	m.changed = make(chan struct{})
}

// Watch returns the current view and a channel closed when the next heartbeat has read a new
// one.
func (m *Membership) Watch() (MembershipView, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view, m.changed
}

// setLeading records whether this member leads projection, for its next heartbeat's leads.
func (m *Membership) setLeading(projection string, leading bool) {
	m.mark(m.leads, projection, leading)
}

// isLeading reports whether this member leads projection.
func (m *Membership) isLeading(projection string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leads[projection]
}

// setWanting records whether this member waits to lead projection, for its next heartbeat's
// wants.
func (m *Membership) setWanting(projection string, wanting bool) {
	m.mark(m.wants, projection, wanting)
}

func (m *Membership) mark(set map[string]bool, projection string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		set[projection] = true
	} else {
		delete(set, projection)
	}
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Leaders returns the member that leads each projection, as far as this member knows: itself
// for the projections it leads now, the others as their last heartbeats said.
func (m *Membership) Leaders() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for _, r := range m.view.Members {
		if r.ID == m.id {
			continue
		}
		for _, p := range r.Leads {
			out[p] = r.ID
		}
	}
	for p := range m.leads {
		out[p] = m.id
	}
	return out
}

// leave deletes the member's row.
func (m *Membership) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.Timeout)
	defer cancel()
	_, _ = m.pool.Exec(ctx, `DELETE FROM projector_members WHERE member_id = $1`, m.id)
}

// Live returns how many members were live at the last heartbeat; ok is false before the first.
func (m *Membership) Live() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.view.Members), m.view.Beats > 0
}

// GroupLeaders reads, from projector_members in the database of pool, the member that leads
// each projection as the live members' last heartbeats say (a member is live when its
// heartbeat is younger than memberTimeout; DefaultMemberTimeout when zero). Any process that
// reaches the database can ask, a daemon or not; a database without the table (not migrated
// yet) has no leaders.
func GroupLeaders(ctx context.Context, pool *pgxpool.Pool, memberTimeout time.Duration) (map[string]string, error) {
	if memberTimeout <= 0 {
		memberTimeout = DefaultMemberTimeout
	}
	out := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT member_id, lead FROM projector_members, unnest(leads) AS lead
		WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY heartbeat_at`, memberTimeout.Seconds())
	if err != nil {
		if isUndefinedTable(err) {
			return out, nil
		}
		return nil, fmt.Errorf("postgres: read the members' leads: %w", err)
	}
	var member, lead string
	_, err = pgx.ForEachRow(rows, []any{&member, &lead}, func() error {
		out[lead] = member // the latest heartbeat wins
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read the members' leads: %w", err)
	}
	return out, nil
}

// isUndefinedTable reports whether err is PostgreSQL's undefined_table (42P01).
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
