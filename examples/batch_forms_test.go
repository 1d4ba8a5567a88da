package examples_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// batches counts the batches committed.
type batches struct {
	projection.NopObserver
	mu sync.Mutex
	n  int
}

func (b *batches) BatchCommitted(projection.CommittedBatch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
}

// school appends to log the events of a training school: dogs registered, and tricks added to
// dogs already registered, interleaved; about n events in all.
func school(log *projectiontest.Log, n int) projection.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	var dogs []string
	var last projection.Event
	for range n {
		if len(dogs) == 0 || rng.IntN(6) == 0 {
			id := uuid.NewString()
			dogs = append(dogs, id)
			last = log.Append(id, "__main__:Dog.Registered", fmt.Appendf(nil, `{"originator_topic":"__main__:Dog","name":"dog %d's name, \"quoted\"; DROP TABLE dogs; --"}`, len(dogs)))
			continue
		}
		id := dogs[rng.IntN(len(dogs))]
		last = log.Append(id, "__main__:Dog.TrickAdded", fmt.Appendf(nil, `{"trick":"trick %d"}`, rng.IntN(50)))
	}
	return last
}

// runFile runs the projections of the examples file over log in a database of its own, and
// returns the digest of each table, and how many batches were committed.
func runFile(t *testing.T, file string, log *projectiontest.Log, last projection.Event, tables ...string) (map[string]string, int) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t, "projector_examples_"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.Options{})
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	obs := &batches{}
	r := projection.NewRunner(log, store, projection.Options{Observer: obs})
	for _, p := range cfg.Projections {
		if err := cfg.SQLErrors(&p, p.Compiled.Check(ctx, pool)); err != nil {
			t.Fatal(err)
		}
		if err := p.Compiled.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(p.Compiled.Runnable(), p.Options); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for _, p := range cfg.Projections {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		_, err := r.Wait(wctx, p.Name, last.Position.Commit)
		wcancel()
		if err != nil {
			t.Fatalf("%s: %s: %v; status %+v", file, p.Name, err, r.Status())
		}
	}
	digests := map[string]string{}
	for _, table := range tables {
		var d string
		var n int
		q := fmt.Sprintf("SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM %s t", pgx.Identifier{table}.Sanitize())
		if err := pool.QueryRow(ctx, q).Scan(&n, &d); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("%s: table %s is empty", file, table)
		}
		digests[table] = fmt.Sprintf("%d rows, md5 %s", n, d)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	return digests, obs.n
}

// Each batch example produces the same rows as the per-event example it rewrites, over the
// same few thousand events, committed in several batches.
func TestBatchExamplesMatchThePerEventExamples(t *testing.T) {
	log := projectiontest.NewLog()
	last := school(log, 4500)
	for _, tc := range []struct {
		perEvent, batch string
		tables          []string
	}{
		{"dog_counts.yaml", "dog_counts_batch.yaml", []string{"dog_counts"}},
		{"training_school.yaml", "training_school_batch.yaml", []string{"dogs", "dog_tricks"}},
	} {
		t.Run(tc.batch, func(t *testing.T) {
			want, _ := runFile(t, tc.perEvent, log, last, tc.tables...)
			got, n := runFile(t, tc.batch, log, last, tc.tables...)
			if n < 4 {
				t.Errorf("the batch form committed %d batches, want several", n)
			}
			for _, table := range tc.tables {
				if got[table] != want[table] {
					t.Errorf("table %s: %s has %s, %s has %s", table, tc.batch, got[table], tc.perEvent, want[table])
				}
			}
		})
	}
}
