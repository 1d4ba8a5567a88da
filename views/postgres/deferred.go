// Deferred indexes: a shadow is built without its secondary indexes, which are created once it
// has caught up, before the swap.

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeferredIndex is a secondary index of a shadow's table, dropped while the shadow builds and
// created again before the swap.
type DeferredIndex struct {
	// Name is the index's name (in the shadow schema); Definition its CREATE INDEX statement
	// as PostgreSQL gives it (pg_get_indexdef: the table schema-qualified).
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// ErrDeferredIndexes is wrapped by Swap's error when the incoming version's deferred indexes
// are not built yet: nothing changed; build them (BuildDeferredIndexes) and try again.
var ErrDeferredIndexes = errors.New("the new version's deferred indexes are not built yet")

// deferredComment starts the comment of a shadow schema that records its deferred indexes
// (the JSON list follows it): the record lives and dies with the schema.
const deferredComment = "projector deferred indexes: "

// secondaryIndexesIn lists the indexes of schema's plain tables that no constraint needs:
// not unique (ON CONFLICT may rely on those), not backing a primary key, unique or exclusion
// constraint, on tables that are not partitions.
const secondaryIndexesIn = `SELECT i.relname, pg_get_indexdef(x.indexrelid)
	FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
	JOIN pg_namespace n ON n.oid = t.relnamespace
	WHERE n.nspname = $1 AND t.relkind = 'r' AND NOT t.relispartition
	  AND NOT x.indisunique AND NOT x.indisprimary AND NOT x.indisexclusion
	  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
	ORDER BY i.relname`

// deferIndexes drops the secondary indexes of schema (see secondaryIndexesIn) in tx and adds
// them to the schema's record of deferred indexes.
func deferIndexes(ctx context.Context, tx pgx.Tx, schema string) ([]DeferredIndex, error) {
	rows, err := tx.Query(ctx, secondaryIndexesIn, schema)
	if err != nil {
		return nil, fmt.Errorf("list the secondary indexes of %s: %w", schema, err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeferredIndex, error) {
		var d DeferredIndex
		err := r.Scan(&d.Name, &d.Definition)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the secondary indexes of %s: %w", schema, err)
	}
	recorded, err := deferredOf(ctx, tx, schema)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return recorded, nil
	}
	all := recorded
	for _, d := range found {
		known := false
		for _, r := range recorded {
			known = known || r.Name == d.Name
		}
		if !known {
			all = append(all, d)
		}
		if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{schema, d.Name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("defer index %s of %s: %w", d.Name, schema, err)
		}
	}
	if err := recordDeferred(ctx, tx, schema, all); err != nil {
		return nil, err
	}
	return all, nil
}

// deferredOf reads schema's record of deferred indexes (none when it has no record).
func deferredOf(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema string) ([]DeferredIndex, error) {
	var comment *string
	err := q.QueryRow(ctx, `SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1`, schema).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (comment == nil || !strings.HasPrefix(*comment, deferredComment))) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the deferred indexes of %s: %w", schema, err)
	}
	var out []DeferredIndex
	if err := json.Unmarshal([]byte(strings.TrimPrefix(*comment, deferredComment)), &out); err != nil {
		return nil, fmt.Errorf("read the deferred indexes of %s: %w", schema, err)
	}
	return out, nil
}

// recordDeferred makes ds schema's record of deferred indexes (removing it when ds is empty).
func recordDeferred(ctx context.Context, tx pgx.Tx, schema string, ds []DeferredIndex) error {
	var comment *string
	if len(ds) > 0 {
		b, err := json.Marshal(ds)
		if err != nil {
			return fmt.Errorf("record the deferred indexes of %s: %w", schema, err)
		}
		c := deferredComment + string(b)
		comment = &c
	}
	var stmt string
	if err := tx.QueryRow(ctx, `SELECT format('COMMENT ON SCHEMA %I IS %L', $1::text, $2::text)`, schema, comment).Scan(&stmt); err != nil {
		return fmt.Errorf("record the deferred indexes of %s: %w", schema, err)
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("record the deferred indexes of %s: %w", schema, err)
	}
	return nil
}

// DeferredIndexes returns the secondary indexes of version id of projection name still to be
// built in its shadow schema.
func (s *Store) DeferredIndexes(ctx context.Context, name, id string) ([]DeferredIndex, error) {
	ds, err := deferredOf(ctx, s.pool, ShadowSchema(name, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: version %s of %q: %w", id, name, err)
	}
	return ds, nil
}

// BuildDeferredIndexes creates the secondary indexes that were dropped from the shadow of
// version id of projection name while it built (see PrepareShadow), in one transaction under
// the schema lock, and clears their record. The build's batches wait meanwhile (CREATE INDEX
// locks the shadow's table against writes); the live tables and their readers are not
// touched. It returns the indexes built and how long they took; none when there were none.
func (s *Store) BuildDeferredIndexes(ctx context.Context, name, id string) ([]DeferredIndex, time.Duration, error) {
	schema := ShadowSchema(name, id)
	fail := func(err error) ([]DeferredIndex, time.Duration, error) {
		return nil, 0, fmt.Errorf("postgres: build the deferred indexes of version %s of %q: %w", id, name, err)
	}
	pending, err := deferredOf(ctx, s.pool, schema)
	if err != nil || len(pending) == 0 {
		if err != nil {
			return fail(err)
		}
		return nil, 0, nil
	}
	began := time.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('projector schema'))`); err != nil {
		return fail(fmt.Errorf("schema lock: %w", err))
	}
	if pending, err = deferredOf(ctx, tx, schema); err != nil {
		return fail(err)
	}
	for _, d := range pending {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2)`, schema, d.Name).Scan(&exists); err != nil {
			return fail(err)
		}
		if exists {
			continue
		}
		if _, err := tx.Exec(ctx, d.Definition); err != nil {
			return fail(fmt.Errorf("index %s: %w", d.Name, err))
		}
	}
	if err := recordDeferred(ctx, tx, schema, nil); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return pending, time.Since(began), nil
}
