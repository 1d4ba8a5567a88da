package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// BenchmarkSwap measures how long readers of a view wait while a swap exchanges its table
// (with an index) for a shadow's of the same size: blocked-ms is the time the swap held the
// live table's lock, reader-max-ms the longest a reader's point query took meanwhile. Each
// iteration swaps the other version in, back and forth.
//
//	go test -run '^$' -bench BenchmarkSwap -benchtime 10x ./views/postgres/
func BenchmarkSwap(b *testing.B) {
	for _, rows := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) { benchmarkSwap(b, rows) })
	}
}

func benchmarkSwap(b *testing.B, rows int) {
	ctx := context.Background()
	store, pool := versionedStore(b)
	v1, v2 := dogsV1(), dogsV2()
	id1, id2 := v1.Fingerprint(), v2.Fingerprint()
	exec(b, pool, v1.Schema)
	exec(b, pool, `INSERT INTO dogs SELECT 'dog-' || i, 'rex' FROM generate_series(1, $1) i`, rows)
	if err := store.RecordVersion(ctx, v1, id1, postgres.Serving); err != nil {
		b.Fatal(err)
	}
	if _, err := store.PrepareShadow(ctx, v2, id2); err != nil {
		b.Fatal(err)
	}
	if _, _, err := store.BuildDeferredIndexes(ctx, "dogs", id2); err != nil {
		b.Fatal(err)
	}
	shadow := postgres.ShadowSchema("dogs", id2)
	exec(b, pool, `INSERT INTO `+pgx.Identifier{shadow, "dogs"}.Sanitize()+` (id, name, tricks) SELECT 'dog-' || i, 'rex', 1 FROM generate_series(1, $1) i`, rows)
	if err := store.RecordVersion(ctx, v2, id2, postgres.Building); err != nil {
		b.Fatal(err)
	}
	st := tracking.State{Last: pos(10)}
	for _, name := range []string{"dogs", postgres.VersionTracking("dogs", id2)} {
		if err := store.Apply(ctx, name, tracking.State{}, st, noop); err != nil {
			b.Fatal(err)
		}
	}
	exec(b, pool, `ANALYZE`)
	relsOf := map[string][]postgres.Relation{}
	for id, def := range map[string]versions.Definition{id1: v1, id2: v2} {
		rels, err := store.RelationsOf(ctx, def)
		if err != nil {
			b.Fatal(err)
		}
		relsOf[id] = rels
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var readerMax time.Duration
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			var name string
			_ = pool.QueryRow(ctx, `SELECT name FROM dogs WHERE id = $1`, fmt.Sprintf("dog-%d", i%rows+1)).Scan(&name)
			mu.Lock()
			readerMax = max(readerMax, time.Since(start))
			mu.Unlock()
		}
	})
	serving, other := id1, id2
	inSchema := shadow
	var blocked time.Duration
	b.ResetTimer()
	for range b.N {
		done, err := store.Swap(ctx, postgres.Swap{Projection: "dogs", In: other, InSchema: inSchema, Out: serving, OutRelations: relsOf[serving]})
		if err != nil {
			b.Fatal(err)
		}
		blocked += done.Blocked
		inSchema = postgres.ArchiveSchema("dogs", serving)
		serving, other = other, serving
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(blocked.Microseconds())/1000/float64(b.N), "blocked-ms")
	b.ReportMetric(float64(readerMax.Microseconds())/1000, "reader-max-ms")
}
