package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/postgres"
)

// Under the park policy a failing queued statement parks its event's stream in
// projector_parked, with the stream's later events, while the other streams go on; resuming
// the stream once the cause is gone replays its events in order, once; skipping one moves its
// events to the dead letters.
func TestParkPolicyParksAStreamInPostgreSQLAndResumeReplaysIt(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE applied (id serial PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL,
		CONSTRAINT not_yet CHECK (stream NOT IN ('b', 'c') OR revision < 1))`); err != nil {
		t.Fatal(err)
	}
	log := projectiontest.NewLog()
	appendAll := func(rounds int, streams ...string) projection.Event {
		var last projection.Event
		for range rounds {
			for _, s := range streams {
				last = log.Append(s, "Item", nil)
			}
		}
		return last
	}
	last := appendAll(3, "a", "b", "c")
	p := projection.New[pgx.Tx]("items").On("Item", func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
		return postgres.Queue(ctx, tx, `INSERT INTO applied (stream, revision) VALUES ($1, $2)`, e.Stream, int64(e.Revision))
	})
	r := projection.NewRunner(log, store, projection.Options{})
	if err := r.Add(p, projection.ProjectionOptions{OnError: projection.ErrorPolicy{Policy: projection.PolicyPark}}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	waitFor := func(e projection.Event) {
		t.Helper()
		if _, err := store.Wait(wctx, "items", e.Position.Commit); err != nil {
			t.Fatal(err)
		}
	}
	applied := func(stream string) []int64 {
		t.Helper()
		rows, _ := store.Pool().Query(ctx, `SELECT revision FROM applied WHERE stream = $1 ORDER BY id`, stream)
		revs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return revs
	}
	waitFor(last)
	last = appendAll(1, "b", "a")
	waitFor(last)
	if got := applied("a"); !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Errorf("stream a applied %v, want 0..3", got)
	}
	if got := applied("b"); !slices.Equal(got, []int64{0}) {
		t.Errorf("stream b applied %v, want [0]", got)
	}
	parked, err := postgres.ListParkedStreams(ctx, store.Pool(), "items")
	if err != nil || len(parked) != 2 {
		t.Fatalf("parked streams = %+v, %v; want b and c", parked, err)
	}
	byStream := map[string]projection.ParkedStream{}
	for _, s := range parked {
		byStream[s.Stream] = s
	}
	if b := byStream["b"]; b.Events != 3 || b.First.Event.Revision != 1 || !strings.Contains(b.First.Error, "not_yet") {
		t.Errorf("parked stream b = %+v, want revisions 1..3 with the constraint's error", b)
	}
	if c := byStream["c"]; c.Events != 2 {
		t.Errorf("parked stream c = %+v, want revisions 1 and 2", c)
	}
	counts, err := postgres.CountParkedStreams(ctx, store.Pool())
	if err != nil || counts["items"] != 2 {
		t.Errorf("CountParkedStreams = %v, %v; want items: 2", counts, err)
	}

	if _, err := store.Pool().Exec(ctx, `ALTER TABLE applied DROP CONSTRAINT not_yet`); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ResumeStream(wctx, "items", "b"); err != nil || n != 3 {
		t.Fatalf("ResumeStream = %d, %v; want 3", n, err)
	}
	if got := applied("b"); !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Errorf("stream b applied %v after the resume, want 0..3 in order", got)
	}
	if n, err := r.SkipStream(wctx, "items", "c"); err != nil || n != 2 {
		t.Fatalf("SkipStream = %d, %v; want 2", n, err)
	}
	if _, err := r.SkipStream(wctx, "items", "c"); !errors.Is(err, projection.ErrNotParked) {
		t.Errorf("a second SkipStream = %v, want ErrNotParked", err)
	}
	dead, err := postgres.ListDeadLetters(ctx, store.Pool(), "items", 0)
	if err != nil || len(dead) != 2 || dead[0].Event.Stream != "c" || dead[0].Event.Revision != 1 || dead[1].Event.Revision != 2 {
		t.Errorf("dead letters = %+v, %v; want c's revisions 1 and 2", dead, err)
	}
	if parked, err := postgres.ListParkedStreams(ctx, store.Pool(), "items"); err != nil || len(parked) != 0 {
		t.Errorf("parked streams = %+v, %v; want none", parked, err)
	}
	last = appendAll(1, "c", "b")
	waitFor(last)
	if got, want := applied("c"), []int64{0, 3}; !slices.Equal(got, want) {
		t.Errorf("stream c applied %v, want %v (1 and 2 skipped)", got, want)
	}
	if got := applied("b"); !slices.Equal(got, []int64{0, 1, 2, 3, 4}) {
		t.Errorf("stream b applied %v, want 0..4", got)
	}
}
