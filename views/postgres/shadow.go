// Shadow schemas: where a new version of a projection is built while the serving version keeps
// the live tables current.

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/views/postgres/versions"
)

// Relation is a relation a projection's schema creates: a table, view, materialized view,
// foreign table or free-standing sequence. Its indexes, constraints, owned sequences and
// row type belong to it and move with it.
type Relation struct {
	Name string
	Kind string // the ALTER command's object type: TABLE, VIEW, MATERIALIZED VIEW, FOREIGN TABLE, SEQUENCE
}

// relationsIn lists the relations of schema (see Relation).
const relationsIn = `SELECT c.relname, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
		WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT c.relispartition
	  AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d
	      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
	ORDER BY c.relname`

// relations returns the relations of schema, read in q.
func relations(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) ([]Relation, error) {
	rows, err := q.Query(ctx, relationsIn, schema)
	if err != nil {
		return nil, fmt.Errorf("list the relations of schema %s: %w", schema, err)
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Relation, error) {
		var rel Relation
		err := r.Scan(&rel.Name, &rel.Kind)
		return rel, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the relations of schema %s: %w", schema, err)
	}
	return rels, nil
}

// ScratchConn begins transactions whose search_path starts with a new, empty schema, which
// disappears with the transaction when it is rolled back: a definition's schema SQL applied in
// one creates its tables afresh, whatever tables of an older version the live schema holds.
// It satisfies declarative.Conn, for checking a new definition's statements.
type ScratchConn struct{ Pool *pgxpool.Pool }

// Begin begins a transaction in a new scratch schema. When the user may not create schemas
// in the database, the transaction has the connection's own search_path, as without a
// ScratchConn.
func (c ScratchConn) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := c.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := pgx.Identifier{"projector_scratch_" + hex.EncodeToString(b[:])}.Sanitize()
	sp, err := tx.Begin(ctx)
	if err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("create a scratch schema: %w", err)
	}
	if _, err := sp.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
			if err := sp.Rollback(ctx); err != nil {
				_ = tx.Rollback(ctx)
				return nil, fmt.Errorf("create a scratch schema: %w", err)
			}
			return tx, nil
		}
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("create a scratch schema: %w", err)
	}
	if err := sp.Commit(ctx); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("create a scratch schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), true)`, schema); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("set the search_path to a scratch schema: %w", err)
	}
	return tx, nil
}

// RelationsOf returns the relations def's schema SQL creates, found by applying it in a scratch
// schema and rolling back.
func (s *Store) RelationsOf(ctx context.Context, def versions.Definition) ([]Relation, error) {
	if strings.TrimSpace(def.Schema) == "" {
		return nil, nil
	}
	tx, err := ScratchConn{Pool: s.pool}.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: relations of %q: %w", def.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, def.Schema); err != nil {
		return nil, fmt.Errorf("postgres: relations of %q: apply its schema: %w", def.Name, err)
	}
	var schema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("postgres: relations of %q: %w", def.Name, err)
	}
	rels, err := relations(ctx, tx, schema)
	if err != nil {
		return nil, fmt.Errorf("postgres: relations of %q: %w", def.Name, err)
	}
	return rels, nil
}

// PrepareShadow creates the shadow schema of version id of def's projection, if missing, and
// applies def's schema SQL in it (its unqualified names resolve to the shadow schema first), as
// Migrate applies a schema: under the schema lock, so replicas do not race. It then drops the
// secondary indexes the schema SQL created (neither unique nor backing a constraint), and
// records them in the shadow schema's comment: the build writes faster without them, and
// BuildDeferredIndexes creates them once it has caught up, before the swap (which refuses
// while any is pending). It returns the indexes deferred.
func (s *Store) PrepareShadow(ctx context.Context, def versions.Definition, id string) ([]DeferredIndex, error) {
	schema := ShadowSchema(def.Name, id)
	path, err := s.shadowPath(ctx, schema)
	if err != nil {
		return nil, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: prepare the shadow of %q: %w", def.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('projector schema'))`); err != nil {
		return nil, fmt.Errorf("postgres: prepare the shadow of %q: schema lock: %w", def.Name, err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("postgres: prepare the shadow of %q: create schema %s: %w", def.Name, schema, err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, path); err != nil {
		return nil, fmt.Errorf("postgres: prepare the shadow of %q: %w", def.Name, err)
	}
	if strings.TrimSpace(def.Schema) != "" {
		if _, err := tx.Exec(ctx, def.Schema); err != nil {
			return nil, fmt.Errorf("postgres: prepare the shadow of %q in %s: schema: %w", def.Name, schema, err)
		}
	}
	deferred, err := deferIndexes(ctx, tx, schema)
	if err != nil {
		return nil, fmt.Errorf("postgres: prepare the shadow of %q: %w", def.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: prepare the shadow of %q: %w", def.Name, err)
	}
	return deferred, nil
}

// DropVersion forgets version id of projection name, which must not be serving: its schema
// (shadow or archive) with everything in it, its tracking row and its stored version.
func (s *Store) DropVersion(ctx context.Context, name, id string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: drop version %s of %q: %w", id, name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The version's tables go before its row, in the order a batch of the version takes them
	// (its statements, then projector_check_version's share lock on the row): the other order
	// deadlocks with a batch in flight. The share lock taken here keeps the state from changing
	// (a swap) until the end.
	var state string
	err = tx.QueryRow(ctx, `SELECT state FROM projector_versions WHERE projection = $1 AND version = $2 FOR SHARE`, name, id).Scan(&state)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: drop version %s of %q: %w", id, name, err)
	}
	if state == string(Serving) {
		return fmt.Errorf("postgres: drop version %s of %q: it is serving", id, name)
	}
	for _, schema := range []string{ShadowSchema(name, id), ArchiveSchema(name, id)} {
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			return fmt.Errorf("postgres: drop version %s of %q: drop schema %s: %w", id, name, schema, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projector_versions WHERE projection = $1 AND version = $2`, name, id); err != nil {
		return fmt.Errorf("postgres: drop version %s of %q: %w", id, name, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, VersionTracking(name, id)); err != nil {
		return fmt.Errorf("postgres: drop version %s of %q: tracking: %w", id, name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: drop version %s of %q: %w", id, name, err)
	}
	return nil
}

// Dependents lists the relations outside rels that depend on the relations rels of the live
// schema, and cannot move with them: views that read them and foreign keys that reference
// them. A swap takes the live tables to the archive schema, and these keep pointing at them
// there (PostgreSQL follows a table by its identity, not its name).
func (s *Store) Dependents(ctx context.Context, rels []Relation) ([]string, error) {
	schema, err := s.trackingSchema(ctx)
	if err != nil {
		return nil, err
	}
	return dependentsIn(ctx, s.pool, schema, rels)
}

// dependentsIn lists the views and foreign keys outside the relations rels of schema that
// depend on them.
func dependentsIn(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string, rels []Relation) ([]string, error) {
	names := make([]string, len(rels))
	for i, r := range rels {
		names[i] = r.Name
	}
	rows, err := q.Query(ctx, `WITH ours AS (
			SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = ANY($2))
		SELECT DISTINCT format('view %s', v.oid::regclass) FROM pg_depend d
			JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
			WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
			  AND d.refobjid IN (SELECT oid FROM ours) AND v.oid NOT IN (SELECT oid FROM ours)
		UNION
		SELECT DISTINCT format('foreign key %s of %s', c.conname, c.conrelid::regclass) FROM pg_constraint c
			WHERE c.contype = 'f' AND c.confrelid IN (SELECT oid FROM ours) AND c.conrelid NOT IN (SELECT oid FROM ours)
		ORDER BY 1`, schema, names)
	if err != nil {
		return nil, fmt.Errorf("postgres: find what depends on %v of %s: %w", names, schema, err)
	}
	deps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: find what depends on %v of %s: %w", names, schema, err)
	}
	return deps, nil
}

// SchemaExists reports whether schema exists.
func (s *Store) SchemaExists(ctx context.Context, schema string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&ok); err != nil {
		return false, fmt.Errorf("postgres: find schema %s: %w", schema, err)
	}
	return ok, nil
}
