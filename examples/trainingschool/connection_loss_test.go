package trainingschool_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// PostgreSQL connections cut in the middle of a batch are a transient fault: the batch is
// retried from the committed state and nothing is lost or applied twice. In each round a
// handler holds its batch open (its statements sent, the transaction uncommitted) while the
// runner's connections are terminated, so the cut always lands on a batch in flight.
func TestPostgresConnectionLossIsRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := pgtest.Config(t, e.schema)
	app := "runner_" + e.schema
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	obs := &errorCounter{}
	r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), postgres.New(pool, postgres.Options{}),
		projection.Options{Observer: obs, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	held := holdOneBatch{inFlight: make(chan struct{}), resume: make(chan struct{})}
	if err := r.Add(held.wrap(trainingschool.PostgresCounts()), projection.ProjectionOptions{BatchSize: 20}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	for round := range 5 {
		held.armed.Store(true)
		before := obs.n()
		last := e.fill(t, fmt.Sprintf("dog %d.", round), 10, 4)
		select {
		case <-held.inFlight:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: no handler ran within 30s", round)
		}
		var killed int
		err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed)
		held.resume <- struct{}{}
		if err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatalf("round %d: no connection of the runner's pool (application_name %s) to terminate", round, app)
		}
		waitFor(t, e.store, last)
		if obs.n() == before {
			t.Fatalf("round %d: the batch in flight on a terminated connection committed without a store error", round)
		}
	}
	if dogs, tricks := e.counts(t); dogs != 50 || tricks != 200 {
		t.Fatalf("counts = %d, %d; want exactly 50, 200", dogs, tricks)
	}
}

// holdOneBatch wraps a projection's handlers: while armed, the next handler call disarms it,
// sends its batch's statements so far, signals inFlight and waits for resume, holding its
// transaction open with uncommitted writes.
type holdOneBatch struct {
	armed    atomic.Bool
	inFlight chan struct{}
	resume   chan struct{}
}

func (h *holdOneBatch) wrap(p *projection.Dispatch[pgx.Tx]) *projection.Dispatch[pgx.Tx] {
	out := projection.New[pgx.Tx](p.Name())
	for _, topic := range p.Topics() {
		out.On(topic, func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
			if err := p.Handle(ctx, tx, e); err != nil {
				return err
			}
			if !h.armed.CompareAndSwap(true, false) {
				return nil
			}
			if err := tx.(*postgres.Tx).Flush(ctx); err != nil {
				return err
			}
			select {
			case h.inFlight <- struct{}{}:
			case <-ctx.Done(): // the test has given up and stops the runner
				return ctx.Err()
			}
			select {
			case <-h.resume:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}
	return out
}

// errorCounter counts the store errors the runner reports.
type errorCounter struct {
	projection.NopObserver
	mu    sync.Mutex
	count int
}

func (c *errorCounter) Error(f projection.Fault) {
	if f.Kind != "store" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count++
}

func (c *errorCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}
