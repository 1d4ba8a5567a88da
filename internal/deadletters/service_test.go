package deadletters_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/deadletters"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// names writes each event's data into names.
type names struct{}

func (names) Name() string     { return "names" }
func (names) Topics() []string { return []string{"Named"} }
func (names) Handle(ctx context.Context, tx pgx.Tx, e projection.Event) error {
	_, err := tx.Exec(ctx, `INSERT INTO names VALUES ($1)`, string(e.Data))
	return err
}

func TestReplayRunsUnderTheLeaseOfTheLeader(t *testing.T) {
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	store := postgres.New(pgtest.Pool(t, schema), postgres.Options{})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pool().Exec(ctx, `CREATE TABLE names (name text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	e := projection.Event{ID: "e1", Type: "Named", Stream: "dog-1", Position: tracking.Position{Commit: 10, Prepare: 10}, Data: []byte("rex")}
	if err := store.Apply(ctx, "names", tracking.State{}, tracking.State{Last: e.Position}, func(ctx context.Context, tx pgx.Tx) error {
		return store.DeadLetter(ctx, tx, "names", e, errors.New("boom"))
	}); err != nil {
		t.Fatal(err)
	}

	svc := deadletters.New()
	if _, err := svc.List(ctx, ""); !errors.Is(err, httpapi.ErrUnavailable) {
		t.Errorf("before Connect: %v, want ErrUnavailable", err)
	}
	elector := postgres.NewElector(pgtest.Config(t, schema).ConnConfig, postgres.ElectorOptions{RetryInterval: 50 * time.Millisecond})
	leases := deadletters.NewLeases(elector)
	svc.Connect(store, []projection.Projection[pgx.Tx]{names{}}, leases)

	if _, err := svc.Replay(ctx, "names", 0); !errors.Is(err, projection.ErrNotLeader) {
		t.Errorf("replay while not leading: %v, want ErrNotLeader", err)
	}
	if _, err := svc.Replay(ctx, "cats", 0); !errors.Is(err, tracking.ErrUnknownProjection) {
		t.Errorf("replay of an unknown projection: %v, want ErrUnknownProjection", err)
	}
	lead, release, err := leases.Acquire(ctx, "names")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := leases.Lease("names"); !ok || got != lead {
		t.Fatalf("Lease while leading = %v, %v", got, ok)
	}
	if _, err := svc.Replay(ctx, "names", 999); !errors.Is(err, httpapi.ErrNoDeadLetter) {
		t.Errorf("replay of an unknown dead letter: %v, want ErrNoDeadLetter", err)
	}
	done, err := svc.Replay(ctx, "names", 0)
	if err != nil || len(done) != 1 || done[0].EventID != "e1" || done[0].Data != "rex" {
		t.Fatalf("replay under the lease = %+v, %v", done, err)
	}
	counts, err := svc.Count(ctx)
	if err != nil || len(counts) != 0 {
		t.Errorf("counts after the replay = %v, %v", counts, err)
	}
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM names WHERE name = 'rex'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows = %d (%v), want 1", n, err)
	}
	release()
	if _, ok := leases.Lease("names"); ok {
		t.Error("Lease after release still reports one")
	}
	if _, err := svc.Replay(ctx, "names", 0); !errors.Is(err, projection.ErrNotLeader) {
		t.Errorf("replay after the release: %v, want ErrNotLeader", err)
	}
}

// A handler that still fails keeps the dead letter and says why through the API's error.
func TestReplayFailureKeepsTheDeadLetter(t *testing.T) {
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	store := postgres.New(pgtest.Pool(t, schema), postgres.Options{})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := projection.Event{ID: "e1", Type: "Named", Stream: "dog-1", Position: tracking.Position{Commit: 10, Prepare: 10}, Data: []byte("rex")}
	if err := store.Apply(ctx, "names", tracking.State{}, tracking.State{Last: e.Position}, func(ctx context.Context, tx pgx.Tx) error {
		return store.DeadLetter(ctx, tx, "names", e, errors.New("boom"))
	}); err != nil {
		t.Fatal(err)
	}
	leases := deadletters.NewLeases(postgres.NewElector(pgtest.Config(t, schema).ConnConfig, postgres.ElectorOptions{}))
	svc := deadletters.New()
	svc.Connect(store, []projection.Projection[pgx.Tx]{names{}}, leases) // no table names: the handler fails
	_, release, err := leases.Acquire(ctx, "names")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := svc.Replay(ctx, "names", 0); !errors.Is(err, httpapi.ErrReplayFailed) || !errors.Is(err, postgres.ErrReplayFailed) {
		t.Errorf("replay through the failing handler: %v, want ErrReplayFailed", err)
	}
	list, err := svc.List(ctx, "names")
	if err != nil || len(list) != 1 {
		t.Errorf("dead letters after the failed replay = %d, %v, want 1", len(list), err)
	}
	if n, err := svc.Purge(ctx, "names", list[0].ID); err != nil || n != 1 {
		t.Errorf("purge = %d, %v", n, err)
	}
}
