// Parked events (error policy park): the store's projection.Parker over projector_parked, and
// the reads the HTTP API and the CLI use on any replica.

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// parkedColumns are the columns scanParked reads, in its order.
const parkedColumns = `stream, commit_position, prepare_position, event_id, event_type, revision, content_type,
	data, metadata, created, coalesce(error, ''), parked_at`

// scanParked reads one row of parkedColumns.
func scanParked(row pgx.CollectableRow) (projection.ParkedEvent, error) {
	var p projection.ParkedEvent
	var commit, prepare, revision int64
	err := row.Scan(&p.Event.Stream, &commit, &prepare, &p.Event.ID, &p.Event.Type, &revision, &p.Event.ContentType,
		&p.Event.Data, &p.Event.Metadata, &p.Event.Created, &p.Error, &p.ParkedAt)
	if err != nil {
		return p, err
	}
	if revision < 0 || commit < 0 || prepare < 0 {
		return p, fmt.Errorf("parked event %s: negative revision or position (%d, %d, %d)", p.Event.ID, revision, commit, prepare)
	}
	p.Event.Revision = uint64(revision)
	p.Event.Position = tracking.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
	p.Event.Created, p.ParkedAt = p.Event.Created.UTC(), p.ParkedAt.UTC()
	return p, nil
}

// Park implements projection.Parker: it queues the event into projector_parked inside tx.
func (s *Store) Park(ctx context.Context, tx pgx.Tx, projectionName string, e projection.Event, cause error) error {
	if err := tracking.CheckStorable(tracking.State{Last: e.Position}); err != nil {
		return err
	}
	data, meta := e.Data, e.Metadata
	if data == nil {
		data = []byte{}
	}
	if meta == nil {
		meta = []byte{}
	}
	var errText any // NULL: parked behind the stream's failing event
	if cause != nil {
		errText = cause.Error()
	}
	return Queue(ctx, tx, `INSERT INTO projector_parked
		(projection, stream, commit_position, prepare_position, event_id, event_type, revision, content_type, data, metadata, created, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		projectionName, e.Stream, int64(e.Position.Commit), int64(e.Position.Prepare), e.ID, e.Type, int64(e.Revision),
		e.ContentType, data, meta, e.Created, errText)
}

// ParkedStreams implements projection.Parker.
func (s *Store) ParkedStreams(ctx context.Context, projectionName string) ([]projection.ParkedStream, error) {
	return ListParkedStreams(ctx, s.pool, projectionName)
}

// ListParkedStreams returns the parked streams of projectionName, oldest parking first, each
// with its first parked event (the one that failed).
func ListParkedStreams(ctx context.Context, q Querier, projectionName string) ([]projection.ParkedStream, error) {
	rows, err := q.Query(ctx, `SELECT `+parkedColumns+`, n FROM (
			SELECT p.*, count(*) OVER w AS n, row_number() OVER w AS i
			FROM projector_parked p WHERE projection = $1
			WINDOW w AS (PARTITION BY stream ORDER BY commit_position, prepare_position
				ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) f
		WHERE i = 1 ORDER BY parked_at, commit_position, prepare_position`, projectionName)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the parked streams of %q: %w", projectionName, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (projection.ParkedStream, error) {
		var p projection.ParkedEvent
		var commit, prepare, revision, n int64
		err := row.Scan(&p.Event.Stream, &commit, &prepare, &p.Event.ID, &p.Event.Type, &revision, &p.Event.ContentType,
			&p.Event.Data, &p.Event.Metadata, &p.Event.Created, &p.Error, &p.ParkedAt, &n)
		if err != nil {
			return projection.ParkedStream{}, err
		}
		p.Event.Revision = uint64(revision)
		p.Event.Position = tracking.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		p.Event.Created, p.ParkedAt = p.Event.Created.UTC(), p.ParkedAt.UTC()
		return projection.ParkedStream{Stream: p.Event.Stream, Events: int(n), First: p}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list the parked streams of %q: %w", projectionName, err)
	}
	return out, nil
}

// Parked implements projection.Parker.
func (s *Store) Parked(ctx context.Context, tx pgx.Tx, projectionName, stream string) ([]projection.ParkedEvent, error) {
	return ListParked(ctx, tx, projectionName, stream)
}

// ListParked returns the parked events of stream of projectionName, in log order.
func ListParked(ctx context.Context, q Querier, projectionName, stream string) ([]projection.ParkedEvent, error) {
	rows, err := q.Query(ctx, `SELECT `+parkedColumns+` FROM projector_parked
		WHERE projection = $1 AND stream = $2 ORDER BY commit_position, prepare_position`, projectionName, stream)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the parked events of %q stream %q: %w", projectionName, stream, err)
	}
	out, err := pgx.CollectRows(rows, scanParked)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the parked events of %q stream %q: %w", projectionName, stream, err)
	}
	return out, nil
}

// CountParkedStreams returns the number of parked streams of each projection that has any.
func CountParkedStreams(ctx context.Context, q Querier) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT projection, count(DISTINCT stream) FROM projector_parked GROUP BY projection`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count the parked streams: %w", err)
	}
	out := map[string]int64{}
	var name string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: count the parked streams: %w", err)
	}
	return out, nil
}

// Unpark implements projection.Parker.
func (s *Store) Unpark(ctx context.Context, tx pgx.Tx, projectionName, stream string, through projection.Position) error {
	return Queue(ctx, tx, `DELETE FROM projector_parked WHERE projection = $1 AND stream = $2
		AND (commit_position, prepare_position) <= ($3, $4)`,
		projectionName, stream, int64(through.Commit), int64(through.Prepare))
}

// ReparkFailed implements projection.Parker.
func (s *Store) ReparkFailed(ctx context.Context, tx pgx.Tx, projectionName string, e projection.Event, cause error) error {
	return Queue(ctx, tx, `UPDATE projector_parked SET error = $5
		WHERE projection = $1 AND stream = $2 AND commit_position = $3 AND prepare_position = $4`,
		projectionName, e.Stream, int64(e.Position.Commit), int64(e.Position.Prepare), cause.Error())
}

// ClearParked implements projection.Parker.
func (s *Store) ClearParked(ctx context.Context, tx pgx.Tx, projectionName string) error {
	return Queue(ctx, tx, `DELETE FROM projector_parked WHERE projection = $1`, projectionName)
}

// moveParked gives the parked events of tracking name from to tracking name to (a swap of
// versions: they follow the version's tracking).
func moveParked(ctx context.Context, tx pgx.Tx, from, to string) error {
	_, err := tx.Exec(ctx, `UPDATE projector_parked SET projection = $2 WHERE projection = $1`, from, to)
	return err
}
