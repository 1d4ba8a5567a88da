package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
)

// A queued statement that fails is found by re-running the batch event by event; under the skip
// policy only its event is dead-lettered, and the rest of the batch commits once.
func TestSkipPolicyIsolatesTheEventOfAFailingQueuedStatement(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE items (n int PRIMARY KEY CHECK (n <> 13))`); err != nil {
		t.Fatal(err)
	}
	log := projectiontest.NewLog()
	var last projection.Event
	for i := range 20 {
		last = log.Append("s", "Item", []byte(fmt.Sprint(i)))
	}
	p := projection.New[pgx.Tx]("items").On("Item", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		return postgres.Queue(ctx, tx, `INSERT INTO items VALUES ($1::text::int)`, string(e.Data))
	})
	r := projection.NewRunner(log, store, projection.Options{})
	if err := r.Add(p, projection.ProjectionOptions{BatchInterval: time.Second, OnError: projection.ErrorPolicy{Policy: projection.PolicySkip}}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := store.Wait(wctx, "items", last.Position.Commit); err != nil {
		t.Fatal(err)
	}
	var n int
	var dead string
	if err := store.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM items), (SELECT string_agg(convert_from(data, 'UTF8'), ',') FROM projector_dead_letters)`).Scan(&n, &dead); err != nil {
		t.Fatal(err)
	}
	if n != 19 || dead != "13" {
		t.Errorf("items = %d, dead letters = %q; want 19 and the event of item 13", n, dead)
	}
}
