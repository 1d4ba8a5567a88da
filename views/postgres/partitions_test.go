package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// revisions records each event's stream and revision; the primary key refuses an event
// applied twice.
func revisions() projection.Projection[pgx.Tx] {
	return projection.New[pgx.Tx]("dogs").On("Dog", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		return postgres.Queue(ctx, tx, `INSERT INTO revs (stream, revision, position) VALUES ($1, $2, $3)`, e.Stream, int64(e.Revision), int64(e.Position.Commit))
	})
}

// checkRevisions checks that every stream of streams has the revisions 0 to perStream-1, each
// once, applied in log order.
func checkRevisions(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, streams, perStream int) {
	t.Helper()
	var n, bad int
	if err := pool.QueryRow(context.Background(), `SELECT count(*),
		count(*) FILTER (WHERE revision <> rn - 1 OR pos_rank <> rn)
		FROM (SELECT revision, row_number() OVER (PARTITION BY stream ORDER BY revision) AS rn,
			row_number() OVER (PARTITION BY stream ORDER BY seq) AS pos_rank FROM revs) r`).Scan(&n, &bad); err != nil {
		t.Fatal(err)
	}
	if n != streams*perStream || bad != 0 {
		t.Errorf("%d events projected (want %d), %d out of order or missing a revision", n, streams*perStream, bad)
	}
}

// Two replicas run a 4-partition projection through advisory-lock leadership; a waiter in a
// third process waits for the projection (every partition); when one replica stops, the other
// takes its partitions and goes on from their positions, never applying an event twice.
func TestPartitionedProjectionAcrossReplicas(t *testing.T) {
	t.Parallel()
	schema := pgtest.NewSchema(t)
	ctx := context.Background()
	stores := make([]*postgres.Store, 3)
	for i := range stores {
		stores[i] = postgres.New(pgtest.Pool(t, schema), postgres.Options{})
		t.Cleanup(func() { _ = stores[i].Close() })
		stores[i].SetPartitions("dogs", 4)
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].Pool().Exec(ctx, `CREATE TABLE revs (seq bigserial, stream text, revision bigint, position bigint, PRIMARY KEY (stream, revision))`); err != nil {
		t.Fatal(err)
	}
	log := projectiontest.NewLog()
	appendAll := func(perStream int) projection.Event {
		var last projection.Event
		for i := range 12 * perStream {
			last = log.Append(fmt.Sprint("dog-", i%12), "Dog", nil)
		}
		return last
	}
	last := appendAll(20)
	stops := make([]func(), 2)
	for i := range stops {
		e := postgres.NewElector(stores[i].Pool().Config().ConnConfig, postgres.ElectorOptions{})
		r := projection.NewRunner(log, stores[i], projection.Options{Leader: e, CheckpointEvery: 20 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		if err := r.Add(revisions(), projection.ProjectionOptions{Partitions: 4, BatchSize: 9}); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		stops[i] = sync.OnceFunc(func() { cancel(); <-done })
		t.Cleanup(stops[i])
	}
	waitFor := func(commit uint64) tracking.State {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		st, err := stores[2].Wait(wctx, "dogs", commit)
		if err != nil {
			t.Fatalf("Wait(dogs, %d): %v (at %v)", commit, err, st)
		}
		return st
	}
	waitFor(last.Position.Commit)
	checkRevisions(t, stores[2].Pool(), 12, 20)
	st, ok, err := stores[2].LoadProjection(ctx, "dogs")
	if err != nil || !ok || !st.Done(last.Position.Commit) {
		t.Errorf("LoadProjection = %v, %v, %v; want past %v", st, ok, err, last.Position)
	}
	var rows int
	if err := stores[2].Pool().QueryRow(ctx, `SELECT count(*) FROM projector_tracking WHERE projection LIKE 'dogs#%'`).Scan(&rows); err != nil || rows != 4 {
		t.Errorf("%d partition tracking rows (%v), want 4", rows, err)
	}
	stops[0]()
	last = appendAll(10)
	waitFor(last.Position.Commit)
	checkRevisions(t, stores[2].Pool(), 12, 30)
	// An offline reset (no replica running) deletes every partition's row.
	stops[1]()
	if _, err := stores[2].Rewind(ctx, "dogs", tracking.State{}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `TRUNCATE revs`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := stores[2].Pool().QueryRow(ctx, `SELECT count(*) FROM projector_tracking`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d tracking rows after the reset (%v), want none", rows, err)
	}
}
