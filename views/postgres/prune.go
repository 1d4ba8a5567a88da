// Pruning archives: the tables of versions that served long ago are dropped, the most recent
// ones kept for a rollback.

package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Pruned says what PruneArchives did.
type Pruned struct {
	// Dropped are the versions whose archive schemas (and tracking rows) were dropped.
	Dropped []string
	// Held are the versions past the ones kept whose archive schemas were not dropped because
	// relations of others depend on their tables, with those relations.
	Held map[string][]string
}

// PruneArchives drops the archive schemas of projection name's archived versions but the keep
// most recently archived ones that have one, with their tracking rows. Their definitions stay
// in projector_versions, as archived: a daemon whose file holds one still knows that it served
// before, and a rollback passes over a version without tables. An archive whose tables
// relations of others depend on (a view, a foreign key: see Dependents) is not dropped, so
// that nothing outside the projection is dropped with it; Held names them.
func (s *Store) PruneArchives(ctx context.Context, name string, keep int) (Pruned, error) {
	res := Pruned{Held: map[string][]string{}}
	vs, err := s.Versions(ctx, name)
	if err != nil {
		return res, err
	}
	var archives []Version
	for _, v := range vs {
		if v.State != Archived {
			continue
		}
		ok, err := s.SchemaExists(ctx, ArchiveSchema(name, v.ID))
		if err != nil {
			return res, err
		}
		if ok {
			archives = append(archives, v)
		}
	}
	// Serving periods do not overlap: the version swapped in last was archived last.
	slices.SortStableFunc(archives, func(a, b Version) int { return b.SwappedAt.Compare(a.SwappedAt) })
	for _, v := range archives[min(keep, len(archives)):] {
		deps, err := s.dropArchive(ctx, name, v.ID)
		if err != nil {
			return res, err
		}
		if len(deps) > 0 {
			res.Held[v.ID] = deps
			continue
		}
		res.Dropped = append(res.Dropped, v.ID)
	}
	return res, nil
}

// dropArchive drops the archive schema of version id of projection name and its tracking row,
// unless relations of others depend on its tables: it returns those then, and drops nothing.
func (s *Store) dropArchive(ctx context.Context, name, id string) ([]string, error) {
	schema := ArchiveSchema(name, id)
	fail := func(err error) ([]string, error) {
		return nil, fmt.Errorf("postgres: drop the archive of version %s of %q: %w", id, name, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('projector schema'))`); err != nil {
		return fail(fmt.Errorf("schema lock: %w", err))
	}
	rels, err := relations(ctx, tx, schema)
	if err != nil {
		return fail(err)
	}
	deps, err := dependentsIn(ctx, tx, schema, rels)
	if err != nil || len(deps) > 0 {
		return deps, err
	}
	if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projector_tracking WHERE projection = $1`, VersionTracking(name, id)); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil, nil
}
