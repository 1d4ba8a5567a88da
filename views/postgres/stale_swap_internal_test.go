package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// TestStaleNotificationsAfterSwapOfPartitionedVersionAreIgnored: the serving version runs in two
// partitions at 100; a rollback swaps in a version at 40. Another process's waits on the
// projection must not be answered from the partitions' old states: the swap tells the
// partitions' waiters, whose rows it deletes, and the notifications from before it that are
// delivered after it are ignored.
func TestStaleNotificationsAfterSwapOfPartitionedVersionAreIgnored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := pgtest.NewDatabase(t, "projector_swapgen_")
	pools := make([]*pgxpool.Pool, 2)
	for i := range pools {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		pools[i] = pool
	}
	writer := New(pools[0], Options{})
	t.Cleanup(func() { _ = writer.Close() })
	if err := writer.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reader := New(pools[1], Options{ListenRetry: 50 * time.Millisecond})
	t.Cleanup(func() { _ = reader.Close() })
	writer.SetPartitions("p", 2)
	reader.SetPartitions("p", 2)
	tap := listenAlongside(t, ctx, writer)
	var stale []string
	for i := range 2 {
		if err := writer.Apply(ctx, projection.PartitionName("p", i), tracking.State{}, at(100), nothing); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, tap.next(t, ctx))
	}
	if err := writer.Apply(ctx, VersionTracking("p", "v2"), tracking.State{}, at(40), nothing); err != nil {
		t.Fatal(err)
	}
	shadow := ShadowSchema("p", "v2")
	for _, sql := range []string{
		`CREATE SCHEMA ` + shadow,
		`INSERT INTO projector_versions (projection, version, definition, state) VALUES ('p', 'v1', '{}', 'serving'), ('p', 'v2', '{}', 'building')`,
	} {
		if _, err := writer.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	poll.Until(t, 10*time.Second, "the reader listening with the partitions' states known", func() bool {
		if s, err := reader.Wait(ctx, "p", 100); err != nil || s != at(100) {
			t.Fatalf("Wait(100) = %v, %v", s, err)
		}
		return settled(reader, projection.PartitionName("p", 0), 0) && settled(reader, projection.PartitionName("p", 1), 0)
	})

	swapped, err := writer.Swap(ctx, Swap{Projection: "p", In: "v2", InSchema: shadow, Out: "v1", OutPartitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if swapped.State != at(40) {
		t.Fatalf("swapped to %v; want %v", swapped.State, at(40))
	}
	for i, payload := range stale {
		redeliver(t, ctx, writer, reader, payload, uint64(i+1))
	}
	done := waitOn(t, ctx, reader, "p", projection.PartitionName("p", 0), 100)
	if s, err := writer.Wait(ctx, "p", 40); err != nil || s != at(40) {
		t.Fatalf("the writer's Wait(40) after the swap = %v, %v; want %v", s, err, at(40))
	}
	for i := range 2 {
		name := projection.PartitionName("p", i)
		if err := writer.Apply(ctx, name, tracking.State{}, at(100), nothing); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			redeliver(t, ctx, writer, reader, stale[1], 3)
			stillWaiting(t, done, "one partition at 100, the other at 40 with a stale notification of 100")
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNotificationWithoutGenerationRereadsTheRow: a writer of the version before generations
// sends a payload without one; its state may be from before a rewind, so the listener reads
// the row instead of trusting it.
func TestNotificationWithoutGenerationRereadsTheRow(t *testing.T) {
	reader, writer, reads := countedStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := writer.Apply(ctx, "p", tracking.State{}, at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Rewind(ctx, "p", at(20), nil); err != nil {
		t.Fatal(err)
	}
	done := waitFor(t, ctx, reader, "p", 100)
	poll.Until(t, 10*time.Second, "the reader settled on p", func() bool { return settled(reader, "p", 1) })
	before := reads.n.Load()
	redeliver(t, ctx, writer, reader, `{"schema":"`+reader.mustSchema(t, ctx)+`","commit":100,"prepare":100,"checkpoint":0} p`, 1)
	poll.Until(t, 10*time.Second, "the reader's read of p", func() bool { return settled(reader, "p", 1) })
	stillWaiting(t, done, "a notification of 100 without a generation")
	if s, _ := hubState(reader, "p"); s != at(20) {
		t.Errorf("the waiters' state after the payload without a generation is %v; want the row's %v", s, at(20))
	}
	if got := reads.n.Load() - before; got != 1 {
		t.Errorf("the payload without a generation cost %d tracking reads; want 1", got)
	}
	if err := writer.Apply(ctx, "p", at(20), at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// mustSchema returns the schema of s's tracking table.
func (s *Store) mustSchema(t *testing.T, ctx context.Context) string {
	t.Helper()
	schema, err := s.trackingSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

// TestPartitionedWaitSeesAPartitionRewoundWhileItWaitedForAnother: the wait for a partitioned
// projection waits for its partitions in turn; one rewound after its turn must be waited for
// again.
func TestPartitionedWaitSeesAPartitionRewoundWhileItWaitedForAnother(t *testing.T) {
	reader, writer, _ := countedStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reader.SetPartitions("q", 2)
	first, second := projection.PartitionName("q", 0), projection.PartitionName("q", 1)
	if err := writer.Apply(ctx, first, tracking.State{}, at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if err := writer.Apply(ctx, second, tracking.State{}, at(10), nothing); err != nil {
		t.Fatal(err)
	}
	done := waitOn(t, ctx, reader, "q", second, 100)
	if _, err := writer.Rewind(ctx, first, at(10), nil); err != nil {
		t.Fatal(err)
	}
	if err := writer.Apply(ctx, second, at(10), at(100), nothing); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the wait back on the rewound partition, or its answer", func() bool {
		return reader.Waiting(first) == 1 || len(done) == 1
	})
	stillWaiting(t, done, "the first partition rewound to 10 while the wait was on the second")
	if err := writer.Apply(ctx, first, at(10), at(100), nothing); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
