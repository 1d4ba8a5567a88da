package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// A waiter in another process (its own pool and LISTEN connection) sees the position of a lone
// event the projection ignores as done, with no further traffic in $all: the runner's probe
// commits the checkpoint past it with a NOTIFY.
func TestCrossProcessWaitForALoneIgnoredEventReturns(t *testing.T) {
	t.Parallel()
	schema := pgtest.NewSchema(t)
	channel := "chan_" + schema
	writer := postgres.New(pgtest.Pool(t, schema), postgres.Options{Channel: channel})
	defer writer.Close()
	ctx := context.Background()
	if err := writer.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reader := postgres.New(pgtest.Pool(t, schema), postgres.Options{Channel: channel})
	defer reader.Close()

	log := projectiontest.NewLog()
	p := projection.New[pgx.Tx]("dogs").On("Dog.Registered", func(ctx context.Context, tx pgx.Tx, _ projection.Event) error {
		_, err := tx.Exec(ctx, `SELECT 1`)
		return err
	})
	r := projection.NewRunner(log, writer, projection.Options{CheckpointEvery: 200 * time.Millisecond})
	if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()

	first := log.Append("dog-1", "Dog.Registered", nil)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := reader.Wait(wctx, "dogs", first.Position.Commit); err != nil {
		t.Fatal(err)
	}
	ignored := log.Append("dog-1", "Dog.Renamed", nil)
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
	defer tcancel()
	s, err := reader.Wait(tctx, "dogs", ignored.Position.Commit)
	if err != nil {
		t.Fatalf("cross-process Wait for the ignored event at %d: %v (state %v)", ignored.Position.Commit, err, s)
	}
	if s.Last != first.Position || !s.Done(ignored.Position.Commit) {
		t.Errorf("state = %v, want last %v and the ignored event done", s, first.Position)
	}
}
