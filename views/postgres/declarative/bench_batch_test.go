package declarative_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

// BenchmarkTrainingSchool measures examples/training_school.yaml (per event: one statement per
// registration, two per trick) against examples/training_school_batch.yaml (three set-based
// statements per batch) on the PostgreSQL store, over the same events: one op is a batch of
// 1000 events (100 dogs registered, 900 tricks) committed with its tracking advance.
//
// The batch form loads the events, bound as one binary array per column, into the session's
// temporary table events (created when missing, emptied at every commit) and runs its
// statements, in one round trip. Two alternatives were measured against it: cte prepends to
// each statement a common table expression over the arrays (sent once per statement; a
// function the statements call could not read it); temp-table-per-batch creates the temporary
// table in every batch (CREATE TEMP TABLE ... ON COMMIT DROP AS SELECT ... FROM unnest).
func BenchmarkTrainingSchool(b *testing.B) {
	perEvent := loadExample(b, "training_school.yaml")
	batch := loadExample(b, "training_school_batch.yaml")
	b.Run("per-event", func(b *testing.B) {
		benchTrainingSchool(b, perEvent, func(ctx context.Context, tx pgx.Tx, evs []projection.Event) error {
			for _, e := range evs {
				if err := perEvent.Handle(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("batch", func(b *testing.B) {
		bp := batch.Runnable().(projection.BatchProjection[pgx.Tx])
		benchTrainingSchool(b, batch, bp.HandleBatch)
	})
	// The alternatives measured against the batch form's way of reading events.
	stmts, err := declarative.ParseBatch(batch.Spec().Batch)
	if err != nil {
		b.Fatal(err)
	}
	const selectEvents = `SELECT u.seq, u.stream_id, u.event_type, u.event_id, u.revision, u.commit_position, u.prepare_position,
		       u.created, u.content_type, u.data::jsonb AS data, u.metadata::jsonb AS metadata
		  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::timestamptz[], $8::text[], $9::text[], $10::text[])
		       WITH ORDINALITY AS u(stream_id, event_type, event_id, revision, commit_position, prepare_position, created, content_type, data, metadata, seq)`
	b.Run("cte", func(b *testing.B) {
		benchTrainingSchool(b, batch, func(ctx context.Context, tx pgx.Tx, evs []projection.Event) error {
			args := columnArrays(evs)
			pb := &pgx.Batch{}
			for _, s := range stmts {
				pb.Queue("WITH events AS ("+selectEvents+")\n"+s.SQL, args...)
			}
			return tx.SendBatch(ctx, pb).Close()
		})
	})
	b.Run("temp-table-per-batch", func(b *testing.B) {
		benchTrainingSchool(b, batch, func(ctx context.Context, tx pgx.Tx, evs []projection.Event) error {
			if _, err := tx.Exec(ctx, "CREATE TEMP TABLE events ON COMMIT DROP AS "+selectEvents, columnArrays(evs)...); err != nil {
				return err
			}
			pb := &pgx.Batch{}
			for _, s := range stmts {
				pb.Queue(s.SQL)
			}
			return tx.SendBatch(ctx, pb).Close()
		})
	})
}

func loadExample(b *testing.B, file string) *declarative.Projection {
	cfg, err := config.Load(filepath.Join("..", "..", "..", "examples", file))
	if err != nil {
		b.Fatal(err)
	}
	return cfg.Projections[0].Compiled
}

// columnArrays returns the columns of evs as arrays, in the order of declarative.Params.
func columnArrays(evs []projection.Event) []any {
	cols := make([][]any, 10)
	for _, e := range evs {
		data, meta := string(e.Data), (*string)(nil)
		for i, v := range []any{e.Stream, e.Type, e.ID, int64(e.Revision), int64(e.Position.Commit), int64(e.Position.Prepare), e.Created, e.ContentType, &data, meta} {
			cols[i] = append(cols[i], v)
		}
	}
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c
	}
	return out
}

func benchTrainingSchool(b *testing.B, p *declarative.Projection, apply func(ctx context.Context, tx pgx.Tx, evs []projection.Event) error) {
	ctx := context.Background()
	conn := testDB(b)
	pool, err := pgxpool.NewWithConfig(ctx, mustPoolConfig(b, conn.Config().ConnString()))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.Options{})
	defer func() { _ = store.Close() }()
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if err := p.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	const batch, dogs = 1000, 100
	var prev tracking.State
	pos := uint64(0)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		ids := make([]string, dogs)
		revs := make([]uint64, dogs)
		evs := make([]projection.Event, 0, batch)
		for i := range batch {
			pos += 100
			e := projection.Event{ID: uuid.NewString(), Position: projection.Position{Commit: pos, Prepare: pos}, Created: created, ContentType: "application/octet-stream"}
			if i < dogs {
				ids[i] = uuid.NewString()
				e.Stream, e.Type, e.Data = ids[i], "__main__:Dog.Registered", []byte(`{"originator_topic":"__main__:Dog","name":"Fido"}`)
			} else {
				d := i % dogs
				revs[d]++
				e.Stream, e.Type, e.Revision, e.Data = ids[d], "__main__:Dog.TrickAdded", revs[d], fmt.Appendf(nil, `{"trick":"t%d"}`, i)
			}
			evs = append(evs, e)
		}
		next := tracking.State{Last: evs[batch-1].Position}
		b.StartTimer()
		if err := store.Apply(ctx, p.Name(), prev, next, func(ctx context.Context, tx pgx.Tx) error { return apply(ctx, tx, evs) }); err != nil {
			b.Fatal(err)
		}
		prev = next
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
