package trainingschool

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/memory"
	"github.com/projector-dev/projector/views/postgres"
)

// ProjectionName is the tracking name of the counting projection.
const ProjectionName = "trainingschool-counts"

// MemoryCounts is the counting projection over the in-memory view: it keeps the counters
// "dogs" and "tricks", and each dog's name under "dog/<id>".
func MemoryCounts() *projection.Dispatch[*memory.Tx] {
	return projection.New[*memory.Tx](ProjectionName).
		On(TopicDogRegistered, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
			var r Registered
			if err := decode(e.Data, e.Type, e.Stream, &r); err != nil {
				return err
			}
			tx.Set("dog/"+e.Stream, r.Name)
			tx.Add("dogs", 1)
			return nil
		}).
		On(TopicTrickAdded, func(_ context.Context, tx *memory.Tx, e projection.Event) error {
			tx.Add("tricks", 1)
			return nil
		})
}

// Schema creates the PostgreSQL view's tables if they are missing.
func Schema(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS trainingschool_counters (
			counter text PRIMARY KEY,
			value   bigint NOT NULL);
		CREATE TABLE IF NOT EXISTS trainingschool_dogs (
			id     uuid PRIMARY KEY,
			name   text NOT NULL,
			tricks text[] NOT NULL DEFAULT '{}')`)
	if err != nil {
		return fmt.Errorf("trainingschool: create view tables: %w", err)
	}
	return nil
}

const incr = `INSERT INTO trainingschool_counters AS c (counter, value) VALUES ($1, 1)
	ON CONFLICT (counter) DO UPDATE SET value = c.value + 1`

// PostgresCounts is the counting projection over PostgreSQL: counters in
// trainingschool_counters, and one row per dog with its tricks in trainingschool_dogs. Its
// statements are queued, so a batch of events costs one round trip.
func PostgresCounts() *projection.Dispatch[pgx.Tx] {
	return projection.New[pgx.Tx](ProjectionName).
		On(TopicDogRegistered, func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
			var r Registered
			if err := decode(e.Data, e.Type, e.Stream, &r); err != nil {
				return err
			}
			if err := postgres.Queue(ctx, tx, `INSERT INTO trainingschool_dogs (id, name) VALUES ($1, $2)`, e.Stream, r.Name); err != nil {
				return err
			}
			return postgres.Queue(ctx, tx, incr, "dogs")
		}).
		On(TopicTrickAdded, func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
			var t TrickAdded
			if err := decode(e.Data, e.Type, e.Stream, &t); err != nil {
				return err
			}
			if err := postgres.Queue(ctx, tx, `UPDATE trainingschool_dogs SET tricks = tricks || $2::text WHERE id = $1`, e.Stream, t.Trick); err != nil {
				return err
			}
			return postgres.Queue(ctx, tx, incr, "tricks")
		})
}

// Counts reads the dog and trick counters of the PostgreSQL view.
func Counts(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (dogs, tricks int64, err error) {
	err = q.QueryRow(ctx, `SELECT
		coalesce((SELECT value FROM trainingschool_counters WHERE counter = 'dogs'), 0),
		coalesce((SELECT value FROM trainingschool_counters WHERE counter = 'tricks'), 0)`).Scan(&dogs, &tricks)
	if err != nil {
		return 0, 0, fmt.Errorf("trainingschool: read counters: %w", err)
	}
	return dogs, tricks, nil
}
