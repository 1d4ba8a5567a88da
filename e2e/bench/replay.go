package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

// positionStep spaces the $all positions given to replayed events.
const positionStep = 128

// ReplayEvents returns the events of the workload's log whose types are in topics, as the
// projections receive them, with increasing positions: the k-th event of the log (from 1) at
// k·positionStep.
func ReplayEvents(w Workload, topics map[string]bool) []projection.Event {
	var (
		events []projection.Event
		k      uint64
	)
	w.Appends(func(a Append) bool {
		for _, e := range a.Events {
			k++
			if topics[e.Type] {
				pos := k * positionStep
				events = append(events, e.ProjectionEvent(a.Stream, projection.Position{Commit: pos, Prepare: pos}))
			}
		}
		return true
	})
	return events
}

// CountEvents counts events by kind.
func CountEvents(events []projection.Event) Counts {
	var c Counts
	for _, e := range events {
		c.Add(e.Type)
	}
	return c
}

// Replay applies events to every projection of cfg as the daemon does, without KurrentDB: in
// a views/postgres store transaction the projection as the daemon runs it (Compiled.Runnable)
// either queues its statements event by event (sent in one pgx.Batch) or, for batch SQL, runs
// its batch handler once over the batch's events; the lease of the projection's advisory lock is checked, the
// tracking row advances by compare-and-set with a notification, and the transaction commits,
// once per batch of batchSize events of the projection's topics (each projection's configured
// batch size when batchSize ≤ 0). The projections run in parallel, each on one connection of
// its own. It returns the time from the first batch to the last commit.
func Replay(ctx context.Context, dbURL string, cfg *config.Config, events []projection.Event, batchSize int) (time.Duration, error) {
	type job struct {
		p      config.Projection
		events []projection.Event
		store  *postgres.Store
		pool   *pgxpool.Pool
	}
	jobs := make([]job, 0, len(cfg.Projections))
	defer func() {
		for _, j := range jobs {
			_ = j.store.Close()
			j.pool.Close()
		}
	}()
	for _, p := range cfg.Projections {
		pc, err := pgxpool.ParseConfig(dbURL)
		if err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		pc.MinConns, pc.MaxConns = 1, 1
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return 0, fmt.Errorf("replay: connect: %w", err)
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return 0, fmt.Errorf("replay: connect: %w", err)
		}
		topics := map[string]bool{}
		for _, t := range p.Compiled.Topics() {
			topics[t] = true
		}
		var own []projection.Event
		for _, e := range events {
			if topics[e.Type] {
				own = append(own, e)
			}
		}
		jobs = append(jobs, job{p: p, events: own, store: postgres.New(pool, postgres.Options{}), pool: pool})
	}
	// Each projection leads through an advisory lock, as in the daemon, so every batch checks
	// the lease as the daemon's do.
	leads := make([]context.Context, len(jobs))
	for i, j := range jobs {
		elector := postgres.NewElector(j.pool.Config().ConnConfig, postgres.ElectorOptions{})
		lead, release, err := elector.Acquire(ctx, j.p.Name)
		if err != nil {
			return 0, fmt.Errorf("replay: lead %s: %w", j.p.Name, err)
		}
		defer release()
		leads[i] = lead
	}
	start := time.Now()
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		size := batchSize
		if size <= 0 {
			size = j.p.Options.BatchSize
		}
		wg.Go(func() { errs[i] = replayOne(leads[i], j.store, j.p.Name, j.p.Compiled.Runnable(), j.events, size) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return elapsed, nil
}

// replayOne applies events to the projection p named name through store in batches of size:
// HandleBatch once per batch when p is a projection.BatchProjection, Handle per event otherwise.
func replayOne(ctx context.Context, store *postgres.Store, name string, p projection.Projection[pgx.Tx], events []projection.Event, size int) error {
	var prev tracking.State
	for from := 0; from < len(events); from += size {
		batch := events[from:min(from+size, len(events))]
		next := tracking.State{Last: batch[len(batch)-1].Position}
		err := store.Apply(ctx, name, prev, next, func(ctx context.Context, tx pgx.Tx) error {
			if bp, ok := p.(projection.BatchProjection[pgx.Tx]); ok {
				return bp.HandleBatch(ctx, tx, batch)
			}
			for _, e := range batch {
				if err := p.Handle(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay %s: batch of events %d to %d: %w", name, from, from+len(batch)-1, err)
		}
		prev = next
	}
	return nil
}
