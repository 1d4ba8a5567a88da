package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// migratedDatabase returns a database of its own with Projector's tables and the schemas of
// the example projections, and their configuration.
func migratedDatabase(t *testing.T, configs []string) (string, *config.Config) {
	t.Helper()
	b, err := MergeConfigs(configs)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("merged.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t, "projector_bench_test_")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.New(pool, postgres.Options{}).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Projections {
		if err := p.Compiled.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	return url, cfg
}

// batchExampleConfigs are the batch SQL forms of exampleConfigs.
var batchExampleConfigs = []string{"../../examples/training_school_batch.yaml", "../../examples/dog_counts_batch.yaml"}

func TestReplayBuildsTheViewsVerifyChecks(t *testing.T) {
	for _, form := range [][]string{exampleConfigs, batchExampleConfigs} {
		testReplayBuildsTheViews(t, form)
	}
}

func testReplayBuildsTheViews(t *testing.T, configs []string) {
	for _, batch := range []int{0, 1} {
		url, cfg := migratedDatabase(t, configs)
		ctx := context.Background()
		w := Workload{Events: 3000, OtherShare: 0.1, MaxTricks: 8, InvoiceLines: 99}
		events := ReplayEvents(w, Topics(cfg))
		if batch == 1 {
			events = events[:500]
		}
		if _, err := Replay(ctx, url, cfg, events, batch); err != nil {
			t.Fatalf("%s, batch %d: %v", configs[0], batch, err)
		}
		got, err := Verify(ctx, url, TrainingSchoolChecks(), CountEvents(events))
		if err != nil {
			t.Fatalf("%s, batch %d: %v", configs[0], batch, err)
		}
		if got != "5 checks on dogs, dog_tricks, dog_counts" {
			t.Errorf("%s, batch %d: verified %q", configs[0], batch, got)
		}
		// Every projection's tracking row is at the last event.
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var rows, at int64
		if err := pool.QueryRow(ctx, `SELECT count(*), min(commit_position) FROM projector_tracking`).Scan(&rows, &at); err != nil {
			t.Fatal(err)
		}
		if last := int64(events[len(events)-1].Position.Commit); rows != 2 || at != last {
			t.Errorf("%s, batch %d: %d tracking rows, lowest at %d, want 2 at %d", configs[0], batch, rows, at, last)
		}

		// A wrong view fails, naming the query and both figures.
		if _, err := pool.Exec(ctx, `DELETE FROM dog_tricks WHERE revision = 1`); err != nil {
			t.Fatal(err)
		}
		pool.Close()
		_, err = Verify(ctx, url, TrainingSchoolChecks(), CountEvents(events))
		if err == nil || !strings.Contains(err.Error(), "SELECT count(*) FROM dog_tricks: ") || !strings.Contains(err.Error(), ", want ") {
			t.Errorf("%s, batch %d: Verify of a wrong view: %v", configs[0], batch, err)
		}
	}
}

func TestVerifyFailsWhenNoCheckApplies(t *testing.T) {
	url := pgtest.NewDatabase(t, "projector_bench_test_")
	_, err := Verify(context.Background(), url, TrainingSchoolChecks(), Counts{})
	if err == nil || !strings.Contains(err.Error(), "nothing verifies the view") {
		t.Errorf("Verify on an empty database: %v", err)
	}
}
