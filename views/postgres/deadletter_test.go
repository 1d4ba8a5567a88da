package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

func TestListDeadLettersReturnsCommittedRecordsInLogOrder(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	created := time.Date(2026, 11, 27, 9, 30, 0, 123456000, time.UTC)
	ev := func(id string, commit uint64, data, meta []byte) projection.Event {
		return projection.Event{ID: id, Type: "school:Dog.TrickAdded", Stream: "dog-" + id, Revision: commit / 10,
			Position: pos(commit), Data: data, Metadata: meta, ContentType: "application/octet-stream", Created: created}
	}
	late := ev("b", 300, []byte{0, 1, 2, 0xff}, []byte(`{"m":1}`))
	early := ev("a", 100, []byte(`{"trick":"roll"}`), nil)
	other := ev("c", 200, []byte(`{}`), nil)
	lost := ev("d", 400, []byte(`{}`), nil)

	// One batch writes two dead letters, out of log order; listing through the batch's own
	// transaction sees them before the commit.
	err := store.Apply(ctx, "dogs", tracking.State{}, tracking.State{Last: pos(300)}, func(ctx context.Context, tx pgx.Tx) error {
		if err := store.DeadLetter(ctx, tx, "dogs", late, errors.New("bad trick")); err != nil {
			return err
		}
		if err := store.DeadLetter(ctx, tx, "dogs", early, errors.New("bad dog")); err != nil {
			return err
		}
		got, err := postgres.ListDeadLetters(ctx, tx, "dogs", 0)
		if err != nil {
			return err
		}
		if len(got) != 2 {
			t.Errorf("inside the batch: %d dead letters, want 2", len(got))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, "tricks", tracking.State{}, tracking.State{Last: pos(200)}, func(ctx context.Context, tx pgx.Tx) error {
		return store.DeadLetter(ctx, tx, "tricks", other, errors.New("other projection"))
	}); err != nil {
		t.Fatal(err)
	}
	// A batch that fails leaves no dead letter behind.
	boom := errors.New("handler failed after dead-lettering")
	if err := store.Apply(ctx, "dogs", tracking.State{Last: pos(300)}, tracking.State{Last: pos(400)}, func(ctx context.Context, tx pgx.Tx) error {
		if err := store.DeadLetter(ctx, tx, "dogs", lost, errors.New("never committed")); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failing batch: %v, want %v", err, boom)
	}

	got, err := postgres.ListDeadLetters(ctx, store.Pool(), "dogs", 0)
	if err != nil {
		t.Fatal(err)
	}
	// early was written second: the list is ordered by log position, not by write order.
	if len(got) != 2 {
		t.Fatalf("dead letters of dogs = %+v, want 2", got)
	}
	for i, want := range []struct {
		e   projection.Event
		err string
	}{{early, "bad dog"}, {late, "bad trick"}} {
		r := got[i]
		if r.Projection != "dogs" || r.Error != want.err || r.FailedAt.IsZero() {
			t.Errorf("record %d = %+v, want projection dogs, error %q, a time", i, r, want.err)
		}
		e := r.Event
		if e.ID != want.e.ID || e.Type != want.e.Type || e.Stream != want.e.Stream || e.Revision != want.e.Revision ||
			e.Position != want.e.Position || e.ContentType != want.e.ContentType || !e.Created.Equal(want.e.Created) ||
			!bytes.Equal(e.Data, want.e.Data) || !bytes.Equal(e.Metadata, want.e.Metadata) {
			t.Errorf("record %d event = %+v, want %+v", i, e, want.e)
		}
	}
	if got[0].ID < got[1].ID {
		t.Errorf("ids %d, %d: the record written second should have the larger id", got[0].ID, got[1].ID)
	}

	first, err := postgres.ListDeadLetters(ctx, store.Pool(), "dogs", 1)
	if err != nil || len(first) != 1 || first[0].Event.ID != "a" {
		t.Errorf("limit 1 = %+v, %v; want the earliest record", first, err)
	}
	if tricks, err := postgres.ListDeadLetters(ctx, store.Pool(), "tricks", 0); err != nil || len(tricks) != 1 || tricks[0].Event.ID != "c" {
		t.Errorf("dead letters of tricks = %+v, %v", tricks, err)
	}
	if none, err := postgres.ListDeadLetters(ctx, store.Pool(), "cats", 0); err != nil || len(none) != 0 {
		t.Errorf("dead letters of an unknown projection = %+v, %v; want none", none, err)
	}
	if _, err := postgres.ListDeadLetters(ctx, store.Pool(), "dogs", -1); err == nil || !strings.Contains(err.Error(), "limit -1") {
		t.Errorf("negative limit: %v, want an error naming it", err)
	}
}

func TestListDeadLettersWithoutTable(t *testing.T) {
	t.Parallel()
	store, schema := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `DROP TABLE `+schema+`.projector_dead_letters`); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.ListDeadLetters(ctx, store.Pool(), "dogs", 0)
	if err == nil || !strings.Contains(err.Error(), `"dogs"`) || !strings.Contains(err.Error(), "projector_dead_letters") {
		t.Errorf("list without the table: %v, want an error naming the projection and table", err)
	}
}
