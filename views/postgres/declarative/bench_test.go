package declarative_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

// BenchmarkApplyBatch measures the training-school projection (two statements per trick) on
// the PostgreSQL store: one op is a batch of 1000 events committed with its tracking advance.
func BenchmarkApplyBatch(b *testing.B) {
	ctx := context.Background()
	conn := testDB(b)
	pool, err := pgxpool.NewWithConfig(ctx, mustPoolConfig(b, conn.Config().ConnString()))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.Options{})
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	p, err := declarative.New(spec)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	var prev tracking.State
	pos := uint64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dog := uuid.New().String()
		evs := make([]projection.Event, batch)
		for j := range evs {
			pos += 100
			e := event("__main__:Dog.TrickAdded", uint64(j), pos, fmt.Sprintf(`{"trick":"t%d"}`, j))
			if j == 0 {
				e = event("__main__:Dog.Registered", 0, pos, `{"name":"Fido"}`)
			}
			e.Stream = dog
			evs[j] = e
		}
		next := tracking.State{Last: evs[batch-1].Position}
		err := store.Apply(ctx, "dogs", prev, next, func(ctx context.Context, tx pgx.Tx) error {
			for _, e := range evs {
				if err := p.Handle(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		prev = next
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

func mustPoolConfig(b *testing.B, s string) *pgxpool.Config {
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// queueTx is a transaction that queues statements, as the views/postgres store's does, and
// keeps only their count: BenchmarkHandleQueued measures the per-event binding alone.
type queueTx struct {
	pgx.Tx
	statements, args int
}

func (q *queueTx) Queue(_ string, args ...any) {
	q.statements, q.args = q.statements+1, q.args+len(args)
}

// BenchmarkHandleQueued measures Handle on a queueing transaction: the per-event cost of
// binding the event's fields to the training-school statements, without PostgreSQL. One op is
// one event (a trick: two statements).
func BenchmarkHandleQueued(b *testing.B) {
	p, err := declarative.New(spec)
	if err != nil {
		b.Fatal(err)
	}
	e := event("__main__:Dog.TrickAdded", 1, 100, `{"trick":"roll over"}`)
	e.Position = projection.Position{Commit: 1 << 40, Prepare: 1 << 40}
	tx := &queueTx{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Handle(ctx, tx, e); err != nil {
			b.Fatal(err)
		}
	}
	if tx.statements != 2*b.N || tx.args != 5*b.N {
		b.Fatalf("queued %d statements with %d arguments for %d events, want 2 and 5 per event", tx.statements, tx.args, b.N)
	}
}
