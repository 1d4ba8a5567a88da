package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

// trickCounter counts tricks per dog in dog_tricks; while broken, it fails on the trick
// "explode".
type trickCounter struct{ broken bool }

func (trickCounter) Name() string     { return "dogs" }
func (trickCounter) Topics() []string { return []string{"TrickAdded"} }
func (c trickCounter) Handle(ctx context.Context, tx pgx.Tx, e projection.Event) error {
	if c.broken && string(e.Data) == "explode" {
		return errors.New("cannot count an exploding trick")
	}
	_, err := tx.Exec(ctx, `INSERT INTO dog_tricks (dog, tricks) VALUES ($1, 1)
		ON CONFLICT (dog) DO UPDATE SET tricks = dog_tricks.tricks + 1`, e.Stream)
	return err
}

// deadLetters writes one dead letter of "dogs" per event, each with its own batch.
func deadLetters(t *testing.T, store *postgres.Store, events ...projection.Event) {
	t.Helper()
	ctx := context.Background()
	prev := tracking.State{}
	for _, e := range events {
		next := tracking.State{Last: e.Position}
		if err := store.Apply(ctx, "dogs", prev, next, func(ctx context.Context, tx pgx.Tx) error {
			return store.DeadLetter(ctx, tx, "dogs", e, errors.New("cannot count an exploding trick"))
		}); err != nil {
			t.Fatal(err)
		}
		prev = next
	}
}

func trick(commit uint64, dog, data string) projection.Event {
	return projection.Event{ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", commit), Type: "TrickAdded", Stream: dog,
		Position: pos(commit), Data: []byte(data), ContentType: "application/json"}
}

func tricksOf(t *testing.T, store *postgres.Store) map[string]int {
	t.Helper()
	rows, err := store.Pool().Query(context.Background(), `SELECT dog, tricks FROM dog_tricks`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var dog string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&dog, &n}, func() error { out[dog] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeadLettersListGetCountPurge(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t, postgres.Options{})
	ctx := context.Background()
	deadLetters(t, store, trick(100, "rex", "explode"), trick(200, "fido", "explode"), trick(300, "rex", "explode"))
	if err := store.Apply(ctx, "cats", tracking.State{}, tracking.State{Last: pos(150)}, func(ctx context.Context, tx pgx.Tx) error {
		return store.DeadLetter(ctx, tx, "cats", trick(150, "tom", "hiss"), errors.New("no cats"))
	}); err != nil {
		t.Fatal(err)
	}

	all, err := postgres.ListAllDeadLetters(ctx, store.Pool(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, fmt.Sprintf("%s@%d", r.Projection, r.Event.Position.Commit))
	}
	if fmt.Sprint(got) != "[cats@150 dogs@100 dogs@200 dogs@300]" {
		t.Errorf("all dead letters = %v, want by projection, then in log order", got)
	}
	one, err := postgres.GetDeadLetter(ctx, store.Pool(), all[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	if one.Event.Stream != "fido" || one.Error != "cannot count an exploding trick" || one.Projection != "dogs" {
		t.Errorf("dead letter %d = %+v", all[2].ID, one)
	}
	if _, err := postgres.GetDeadLetter(ctx, store.Pool(), 999999); !errors.Is(err, postgres.ErrNoDeadLetter) {
		t.Errorf("unknown dead letter: %v, want ErrNoDeadLetter", err)
	}
	counts, err := postgres.CountDeadLetters(ctx, store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(counts) != "map[cats:1 dogs:3]" {
		t.Errorf("counts = %v", counts)
	}

	// Purging by id removes that one only; an id of another projection is refused.
	if _, err := postgres.PurgeDeadLetters(ctx, store.Pool(), "dogs", all[0].ID); !errors.Is(err, postgres.ErrNoDeadLetter) {
		t.Errorf("purge of the cats' dead letter as dogs: %v, want ErrNoDeadLetter", err)
	}
	if n, err := postgres.PurgeDeadLetters(ctx, store.Pool(), "dogs", all[1].ID); err != nil || n != 1 {
		t.Errorf("purge one = %d, %v", n, err)
	}
	if n, err := postgres.PurgeDeadLetters(ctx, store.Pool(), "dogs", 0); err != nil || n != 2 {
		t.Errorf("purge all of dogs = %d, %v, want 2", n, err)
	}
	counts, err = postgres.CountDeadLetters(ctx, store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(counts) != "map[cats:1]" {
		t.Errorf("counts after the purge = %v, want the cats' only", counts)
	}
}

func TestReplayDeadLettersAppliesEachOnceAfterTheHandlerIsFixed(t *testing.T) {
	t.Parallel()
	store, schema := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE dog_tricks (dog text PRIMARY KEY, tricks int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	deadLetters(t, store, trick(100, "rex", "explode"), trick(200, "fido", "explode"), trick(300, "rex", "explode"))
	before, _, err := store.Load(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}

	// Still broken: nothing is applied and the dead letters stay.
	if _, err := store.ReplayDeadLetters(ctx, trickCounter{broken: true}, 0); !errors.Is(err, postgres.ErrReplayFailed) {
		t.Fatalf("replay through the broken handler: %v, want ErrReplayFailed", err)
	}
	if got := tricksOf(t, store); len(got) != 0 {
		t.Errorf("after the failed replay the view = %v, want empty", got)
	}
	left, err := postgres.ListDeadLetters(ctx, store.Pool(), "dogs", 0)
	if err != nil || len(left) != 3 {
		t.Fatalf("after the failed replay: %d dead letters (%v), want 3", len(left), err)
	}

	// Fixed: one by id, then the rest at once from several callers: each event once.
	one, err := store.ReplayDeadLetters(ctx, trickCounter{}, left[1].ID)
	if err != nil || len(one) != 1 || one[0].Event.Stream != "fido" {
		t.Fatalf("replay of %d = %+v, %v", left[1].ID, one, err)
	}
	if _, err := store.ReplayDeadLetters(ctx, trickCounter{}, left[1].ID); !errors.Is(err, postgres.ErrNoDeadLetter) {
		t.Errorf("second replay of %d: %v, want ErrNoDeadLetter", left[1].ID, err)
	}
	// Concurrent replays run under the lease of the process that leads the projection.
	lead, release, err := leaderTestElector(t, schema, time.Second).Acquire(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var wg sync.WaitGroup
	replayed := make([]int, 4)
	for i := range replayed {
		wg.Go(func() {
			r, err := store.ReplayDeadLetters(lead, trickCounter{}, 0)
			if err != nil {
				t.Errorf("replay %d: %v", i, err)
			}
			replayed[i] = len(r)
		})
	}
	wg.Wait()
	total := 0
	for _, n := range replayed {
		total += n
	}
	if total != 2 {
		t.Errorf("concurrent replays replayed %v dead letters, want 2 in all", replayed)
	}
	if got := fmt.Sprint(tricksOf(t, store)); got != "map[fido:1 rex:2]" {
		t.Errorf("view after the replays = %s, want every dead letter applied once", got)
	}
	left, err = postgres.ListDeadLetters(ctx, store.Pool(), "dogs", 0)
	if err != nil || len(left) != 0 {
		t.Errorf("dead letters left = %d (%v), want none", len(left), err)
	}
	after, _, err := store.Load(ctx, "dogs")
	if err != nil || after != before {
		t.Errorf("tracking after the replays = %v (%v), want unchanged %v", after, err, before)
	}
}

func TestReplayDeadLettersRefusedWhileAnotherProcessLeads(t *testing.T) {
	t.Parallel()
	store, schema := newStore(t, postgres.Options{})
	ctx := context.Background()
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE dog_tricks (dog text PRIMARY KEY, tricks int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	deadLetters(t, store, trick(100, "rex", "explode"))
	lead, release, err := leaderTestElector(t, schema, time.Second).Acquire(ctx, "dogs")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := store.ReplayDeadLetters(ctx, trickCounter{}, 0); !errors.Is(err, postgres.ErrLeaderActive) {
		t.Errorf("replay without the lease while it is held: %v, want ErrLeaderActive", err)
	}
	if got := tricksOf(t, store); len(got) != 0 {
		t.Errorf("view = %v, want nothing applied", got)
	}
	// Under the lease (the daemon that leads the projection) it goes through.
	if r, err := store.ReplayDeadLetters(lead, trickCounter{}, 0); err != nil || len(r) != 1 {
		t.Fatalf("replay under the lease = %d, %v", len(r), err)
	}
	if got := fmt.Sprint(tricksOf(t, store)); got != "map[rex:1]" {
		t.Errorf("view = %s, want the dead letter applied", got)
	}
}
