package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

// On a busy log the serving version commits between any check and the swap, so the swap holds
// it still and waits for the new version to catch up: the new version's batch commits during
// the swap, the serving version's batch waits for the swap and is then refused, and the new
// version serves at the position the old one stopped at.
func TestSwapHoldsTheServingVersionWhileTheNewOneCatchesUp(t *testing.T) {
	ctx := context.Background()
	store, pool := versionedStore(t)
	id1, id2, shadow := serveAndBuild(t, ctx, store, pool)
	s5, s10 := tracking.State{Last: pos(5)}, tracking.State{Last: pos(10)}
	if err := store.Apply(ctx, "dogs", tracking.State{}, s10, insertDog("a", false)); err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, shadow, tracking.State{}, s5, insertDog("a", true)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.BuildDeferredIndexes(ctx, "dogs", id2); err != nil {
		t.Fatal(err)
	}
	rels, err := store.RelationsOf(ctx, dogsV1())
	if err != nil {
		t.Fatal(err)
	}

	swapped := make(chan error, 1)
	go func() {
		_, err := store.Swap(ctx, postgres.Swap{Projection: "dogs", In: id2, InSchema: postgres.ShadowSchema("dogs", id2),
			Out: id1, OutRelations: rels, CaughtUp: true, CatchUpWait: time.Minute})
		swapped <- err
	}()
	poll.Until(t, 10*time.Second, "the swap holds the live table", func() bool {
		return count(t, pool, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = 'dogs' AND n.nspname = current_schema() AND l.mode = 'AccessExclusiveLock' AND l.granted`) == 1
	})
	served := make(chan error, 1)
	go func() { served <- store.Apply(ctx, "dogs", s10, tracking.State{Last: pos(11)}, insertDog("b", false)) }()
	select {
	case err := <-served:
		t.Fatalf("the serving version committed during the swap: %v", err)
	case err := <-swapped:
		t.Fatalf("the swap ended before the new version caught up: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := store.Apply(ctx, shadow, s5, s10, insertDog("b", true)); err != nil {
		t.Fatalf("the new version's batch during the swap: %v", err)
	}
	if err := <-swapped; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, postgres.ErrVersionChanged) || !errors.Is(err, projection.ErrLeadershipLost) {
		t.Fatalf("the serving version's batch held by the swap: %v, want ErrVersionChanged", err)
	}
	if got, _, _ := store.Load(ctx, "dogs"); got != s10 {
		t.Fatalf("tracking after the swap: %v, want %v", got, s10)
	}
	if n := count(t, pool, `SELECT count(*) FROM dogs WHERE tricks = 3`); n != 2 {
		t.Fatalf("live dogs after the swap: %d rows of the new version, want 2", n)
	}
}
