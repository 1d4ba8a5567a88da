// Versions of declarative projections in PostgreSQL: the projector_versions table, and the
// guard every batch of a versioned projection runs so that only the version in the state it
// expects commits.

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// VersionState is the state of a projection's version.
type VersionState string

// The states of a version.
const (
	// Serving: its tables are the live ones and its tracking row is the projection's.
	Serving VersionState = "serving"
	// Building: it is being built in its shadow schema, under its own tracking row.
	Building VersionState = "building"
	// Archived: it served before; its tables wait in its archive schema for a rollback.
	Archived VersionState = "archived"
)

// Version is one stored version of a projection.
type Version struct {
	Projection string
	// ID identifies the version: the definition's fingerprint, with a suffix ~N for the Nth
	// rebuild of the same definition (see BaseFingerprint).
	ID         string
	Definition versions.Definition
	State      VersionState
	CreatedAt  time.Time
	SwappedAt  time.Time // zero until it was first swapped in
}

// BaseFingerprint returns the fingerprint a version ID was made from (the ID without its
// rebuild suffix).
func BaseFingerprint(id string) string {
	fp, _, _ := strings.Cut(id, "~")
	return fp
}

// VersionTracking is the tracking name of version id of projection name while it does not
// serve (building or archived): name@id.
func VersionTracking(name, id string) string { return name + "@" + id }

// ShadowSchema is the schema version id of projection name is built in.
func ShadowSchema(name, id string) string { return schemaName("projector_shadow_", name, id) }

// ArchiveSchema is the schema the tables of version id of projection name are kept in once it
// stops serving.
func ArchiveSchema(name, id string) string { return schemaName("projector_archive_", name, id) }

// schemaName joins prefix, name and id within PostgreSQL's 63-byte limit on names: the name is
// cut to fit, and the id's digits follow it (the rebuild suffix as _rN).
func schemaName(prefix, name, id string) string {
	id = strings.ReplaceAll(id, "~", "_r")
	if room := 63 - len(prefix) - 1 - len(id); len(name) > room {
		name = name[:max(room, 0)]
	}
	return prefix + name + "_" + id
}

// ErrVersionChanged is wrapped by the error of a batch refused because the version the
// process runs is no longer in the state it runs it as (another version was swapped in, or
// the build was abandoned). It wraps projection.ErrLeadershipLost too (see Apply): the runner
// stops leading and waits, and the daemon starts over with the serving version.
var ErrVersionChanged = errors.New("the projection's version changed")

// versionChangedCode is the SQLSTATE of projector_check_version's error.
const versionChangedCode = "PJ001"

// guard is what the store does in every batch of a versioned projection.
type guard struct {
	version    string       // the version the process runs
	state      VersionState // the state that version must be in
	searchPath string       // for a building version: its shadow schema first; else empty
}

// Guard makes every batch of projectionName check, before it advances tracking, that the
// version id of its projection is in state want, and refuse to commit otherwise (an error
// wrapping ErrVersionChanged): base is the projection's own name, projectionName its tracking
// name (base for the serving version, VersionTracking for another). For a building version,
// every batch also sets its transaction's search_path to the version's shadow schema followed
// by the connection's own search_path, so its unqualified names resolve there.
func (s *Store) Guard(ctx context.Context, projectionName, base, id string, want VersionState) error {
	g := guard{version: id, state: want}
	if want == Building {
		path, err := s.shadowPath(ctx, ShadowSchema(base, id))
		if err != nil {
			return err
		}
		g.searchPath = path
	}
	s.guardMu.Lock()
	defer s.guardMu.Unlock()
	if s.guards == nil {
		s.guards = map[string]guardOf{}
	}
	s.guards[projectionName] = guardOf{guard: g, base: base}
	return nil
}

// begin returns the statements that begin a batch transaction of the guarded version: BEGIN,
// and for a building version the search path of its schema (see lazyTx: a SET queued in a pgx
// batch's pipeline would come too late, as the pipeline prepares every statement before it
// runs the first).
func (g guard) begin() []string {
	if g.searchPath == "" {
		return []string{"BEGIN"}
	}
	return []string{"BEGIN", "SET LOCAL search_path TO " + g.searchPath}
}

// versionMoved returns err, the failure of a guarded batch's statements, as an error wrapping
// ErrVersionChanged when the version the batch ran is no longer in the state it ran it as:
// the old version's statements failed on the new version's tables, which is no fault of the
// event, so no error policy may apply to it.
func (s *Store) versionMoved(ctx context.Context, projectionName string, g guardOf, guarded bool, err error) error {
	if !guarded || errors.Is(err, projection.ErrTransient) {
		return err
	}
	var current string
	qerr := s.pool.QueryRow(context.WithoutCancel(ctx), `SELECT coalesce((SELECT version FROM projector_versions
		WHERE projection = $1 AND state = $2), '')`, g.base, string(g.state)).Scan(&current)
	if qerr != nil || current == g.version {
		return err
	}
	return fmt.Errorf("postgres: batch of %q: it runs version %s, but %s is %s now: %w: %w: %w",
		projectionName, g.version, current, g.state, ErrVersionChanged, projection.ErrLeadershipLost, err)
}

// guardOf is a guard with the name of the projection whose version it checks.
type guardOf struct {
	guard
	base string
}

// guardFor returns the guard of projectionName, if any.
func (s *Store) guardFor(projectionName string) (guardOf, bool) {
	s.guardMu.Lock()
	defer s.guardMu.Unlock()
	g, ok := s.guards[projectionName]
	return g, ok
}

// shadowPath returns the search_path of a transaction of a version built in schema: the schema,
// then the connection's own search_path.
func (s *Store) shadowPath(ctx context.Context, schema string) (string, error) {
	var base string
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&base); err != nil {
		return "", fmt.Errorf("postgres: read the search_path: %w", err)
	}
	return pgx.Identifier{schema}.Sanitize() + ", " + base, nil
}

// Versions returns the stored versions of projectionName, newest first.
func (s *Store) Versions(ctx context.Context, projectionName string) ([]Version, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, definition, state, created_at, swapped_at
		FROM projector_versions WHERE projection = $1 ORDER BY created_at DESC, version`, projectionName)
	if err != nil {
		return nil, fmt.Errorf("postgres: read the versions of %q: %w", projectionName, err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		v := Version{Projection: projectionName}
		var def []byte
		var state string
		var swapped *time.Time
		if err := rows.Scan(&v.ID, &def, &state, &v.CreatedAt, &swapped); err != nil {
			return nil, fmt.Errorf("postgres: read the versions of %q: %w", projectionName, err)
		}
		if v.Definition, err = versions.Unmarshal(def); err != nil {
			return nil, fmt.Errorf("postgres: version %s of %q: %w", v.ID, projectionName, err)
		}
		v.State = VersionState(state)
		if swapped != nil {
			v.SwappedAt = *swapped
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read the versions of %q: %w", projectionName, err)
	}
	return out, nil
}

// RecordVersion stores version id of def in state. A version recorded as serving archives the
// version that served before (a change adopted without a rebuild: its tables stay where they
// are); recording an existing version changes its state.
func (s *Store) RecordVersion(ctx context.Context, def versions.Definition, id string, state VersionState) error {
	b, err := def.Marshal()
	if err != nil {
		return fmt.Errorf("postgres: record version %s of %q: %w", id, def.Name, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: record version %s of %q: %w", id, def.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Replicas starting together record the same first version at once: one at a time, each
	// projection, so the second finds the first's row instead of breaking the one-serving rule.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('projector versions'), hashtext($1))`, def.Name); err != nil {
		return fmt.Errorf("postgres: record version %s of %q: lock the projection's versions: %w", id, def.Name, err)
	}
	if state == Serving {
		if _, err := tx.Exec(ctx, `UPDATE projector_versions SET state = 'archived'
			WHERE projection = $1 AND state = 'serving' AND version <> $2`, def.Name, id); err != nil {
			return fmt.Errorf("postgres: record version %s of %q: archive the serving version: %w", id, def.Name, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO projector_versions (projection, version, definition, state, swapped_at)
		VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'serving' THEN now() END)
		ON CONFLICT (projection, version) DO UPDATE SET state = $4`, def.Name, id, b, string(state)); err != nil {
		return fmt.Errorf("postgres: record version %s of %q as %s: %w", id, def.Name, state, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: record version %s of %q: %w", id, def.Name, err)
	}
	return nil
}
