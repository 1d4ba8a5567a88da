// Package versioning decides, at the daemon's start, which version of each declarative
// projection it runs: the version serving the live tables, and a version building in a shadow
// schema when the projections file's definition is new (its on_change policy permitting). It
// then runs a generation of projections (both versions of each) and swaps a built version in
// once it has caught up.
package versioning

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// Entry is what the daemon runs of one projection.
type Entry struct {
	// Name is the projection's name; Project is its entry in the projections file.
	Name    string
	Project *config.Projection
	// Serving is the definition of the version serving the live tables, and ServingID its
	// version. It is the file's definition, or the stored one when the file's is older.
	Serving   versions.Definition
	ServingID string
	// Building is the definition of the version building in a shadow schema, if any.
	Building   *versions.Definition
	BuildingID string
	// Stale tells that the file's definition is a version that served before and no longer
	// does (an older file, or a version rolled back): the stored serving version runs.
	Stale bool
}

// onDependency is the on_dependency policy of e's swap: the one recorded with the version
// building, which the file that deployed it gave, whichever replica swaps it in; else the
// file's.
func (e *Entry) onDependency() config.OnDependency {
	if e.Building != nil && e.Building.OnDependency != "" {
		return config.OnDependency(e.Building.OnDependency)
	}
	return e.Project.OnDependency
}

// keepArchives is the keep_archives policy of e's swap, found as onDependency is.
func (e *Entry) keepArchives() int {
	if e.Building != nil && e.Building.KeepArchives != nil {
		return *e.Building.KeepArchives
	}
	return e.Project.KeepArchives
}

// Plan decides, for every projection of cfg, what the daemon runs (see Entry), and records it
// in store's projector_versions:
//
//   - a projection without a serving version adopts the file's definition as serving (its
//     tables are the live ones);
//   - the serving version's definition runs as it is, with the version building, if any;
//   - a definition that is building (another replica started its build) joins it;
//   - a definition that served before (archived) is stale: the stored serving version runs;
//   - a new definition follows the projection's on_change policy: rebuild records it as
//     building (abandoning another build), continue records it as serving from the current
//     position, fail refuses (a *config.ValidationError naming each such projection and what
//     changed).
//
// A rebuild is refused, before anything is recorded, when the new definition names schemas
// explicitly or when relations of others depend on the live tables (views, foreign keys) and
// on_dependency is refuse: both come back as configuration errors.
func Plan(ctx context.Context, store *postgres.Store, cfg *config.Config, log *zap.Logger) ([]Entry, error) {
	var entries []Entry
	var problems []*config.Error
	for i := range cfg.Projections {
		p := &cfg.Projections[i]
		e, problem, err := plan(ctx, store, cfg.File, p, log)
		if err != nil {
			return nil, err
		}
		if problem != nil {
			problems = append(problems, problem)
			continue
		}
		entries = append(entries, e)
	}
	if len(problems) > 0 {
		return nil, &config.ValidationError{Errors: problems}
	}
	return entries, nil
}

func plan(ctx context.Context, store *postgres.Store, file string, p *config.Projection, log *zap.Logger) (Entry, *config.Error, error) {
	def := p.Definition()
	fp := def.Fingerprint()
	e := Entry{Name: p.Name, Project: p, Serving: def, ServingID: fp}
	vs, err := store.Versions(ctx, p.Name)
	if err != nil {
		return e, nil, err
	}
	var serving, building *postgres.Version
	archived := false
	for i := range vs {
		switch v := &vs[i]; v.State {
		case postgres.Serving:
			serving = v
		case postgres.Building:
			building = v
		case postgres.Archived:
			archived = archived || postgres.BaseFingerprint(v.ID) == fp
		}
	}
	withBuild := func(e Entry) Entry {
		if building != nil {
			d := building.Definition
			e.Building, e.BuildingID = &d, building.ID
		}
		return e
	}
	switch {
	case serving == nil:
		if err := store.RecordVersion(ctx, def, fp, postgres.Serving); err != nil {
			return e, nil, err
		}
		log.Info("version recorded", zap.String("projection", p.Name), zap.String("version", fp))
		return e, nil, nil
	case postgres.BaseFingerprint(serving.ID) == fp:
		e.ServingID = serving.ID
		return withBuild(e), nil, nil
	}
	e.Serving, e.ServingID = serving.Definition, serving.ID
	switch {
	case building != nil && postgres.BaseFingerprint(building.ID) == fp:
		return withBuild(e), nil, nil
	case archived:
		log.Warn("the projections file defines a version that no longer serves (an older file, or a version rolled back): running the serving version as stored",
			zap.String("projection", p.Name), zap.String("file_version", fp), zap.String("serving_version", serving.ID))
		e.Stale = true
		return withBuild(e), nil, nil
	}
	changed := strings.Join(serving.Definition.Changes(def), ", ")
	switch p.OnChange {
	case config.OnChangeFail:
		return e, &config.Error{File: file, Line: p.Line, Projection: p.Name, Key: "on_change",
			Msg: fmt.Sprintf("the definition differs from the serving version %s (changed: %s), and on_change is fail: not starting; restore the serving definition, or deploy the change with on_change: rebuild (a rebuild in a shadow schema) or continue (from the current position)", serving.ID, changed)}, nil
	case config.OnChangeContinue:
		if from := serving.Definition.Partitioning(); from != "" && from != def.Partitioning() {
			to := def.Partitioning()
			if to == "" {
				to = "none"
			}
			return e, &config.Error{File: file, Line: p.Line, Projection: p.Name, Key: "on_change",
				Msg: fmt.Sprintf("the partitions change from %s to %s, which on_change: continue cannot adopt (events would move between partitions that have got to different positions): deploy it with on_change: rebuild, or reset the projection", from, to)}, nil
		}
		if p.Compiled != nil {
			// Its schema SQL brings the live tables to it (ALTER TABLE ... ADD COLUMN IF NOT
			// EXISTS and the like); migrations left it out while it was not serving.
			if err := p.Compiled.Migrate(ctx, store.Pool()); err != nil {
				return e, nil, err
			}
		}
		if err := store.RecordVersion(ctx, def, fp, postgres.Serving); err != nil {
			return e, nil, err
		}
		log.Info("definition changed: adopting it from the current position (on_change: continue)",
			zap.String("projection", p.Name), zap.String("version", fp), zap.String("previous_version", serving.ID), zap.String("changed", changed))
		e.Serving, e.ServingID = def, fp
		return withBuild(e), nil, nil
	}
	deps, problem, err := Buildable(ctx, store, file, p, def, serving.Definition)
	if problem != nil || err != nil {
		return e, problem, err
	}
	if len(deps) > 0 {
		log.Warn("other relations depend on the live tables and will not move with them (on_dependency: proceed): after the swap they point at the old tables in the archive schema",
			zap.String("projection", p.Name), zap.Strings("dependents", deps), zap.String("archive_schema", postgres.ArchiveSchema(p.Name, serving.ID)))
	}
	if building != nil {
		if err := store.DropVersion(ctx, p.Name, building.ID); err != nil {
			return e, nil, err
		}
		log.Info("build abandoned for a newer definition", zap.String("projection", p.Name), zap.String("version", building.ID))
	}
	if err := store.RecordVersion(ctx, def, fp, postgres.Building); err != nil {
		return e, nil, err
	}
	log.Info("definition changed: building the new version in a shadow schema while the serving version stays live",
		zap.String("projection", p.Name), zap.String("version", fp), zap.String("serving_version", serving.ID), zap.String("changed", changed),
		zap.String("shadow_schema", postgres.ShadowSchema(p.Name, fp)))
	e.Building, e.BuildingID = &def, fp
	return e, nil, nil
}

// Buildable returns a configuration error when def cannot be built in a shadow schema and
// swapped in for serving: its SQL names schemas explicitly, or relations of others depend on
// serving's live tables and p's on_dependency is refuse. Under on_dependency: proceed it
// returns those dependents instead, which will keep pointing at the archived tables.
func Buildable(ctx context.Context, store *postgres.Store, file string, p *config.Projection, def, serving versions.Definition) ([]string, *config.Error, error) {
	if err := def.CheckUnqualified(); err != nil {
		return nil, &config.Error{File: file, Line: p.Line, Projection: p.Name, Msg: err.Error()}, nil
	}
	rels, err := store.RelationsOf(ctx, serving)
	if err != nil {
		return nil, nil, err
	}
	deps, err := store.Dependents(ctx, rels)
	if err != nil {
		return nil, nil, err
	}
	if len(deps) > 0 && p.OnDependency != config.OnDependencyProceed {
		return nil, &config.Error{File: file, Line: p.Line, Projection: p.Name, Key: "on_dependency",
			Msg: fmt.Sprintf("cannot rebuild in a shadow schema: other relations depend on its live tables and would not move with them at the swap (%s); drop them (and create them again after the swap), make them part of the projection's schema, or set on_dependency: proceed to swap anyway, leaving them on the archived tables", strings.Join(deps, ", "))}, nil
	}
	return deps, nil, nil
}

// Precheck returns a configuration error for each projection of cfg whose definition would
// have to be rebuilt (it differs from the serving version, under on_change: rebuild) but names
// schemas explicitly: checked before its statements are prepared, whose errors would hide
// the reason. Without stored versions (before the migrations), there is nothing to check.
func Precheck(ctx context.Context, store *postgres.Store, cfg *config.Config) error {
	var problems []*config.Error
	for i := range cfg.Projections {
		p := &cfg.Projections[i]
		if p.OnChange != config.OnChangeRebuild {
			continue
		}
		vs, err := store.Versions(ctx, p.Name)
		if err != nil {
			return nil
		}
		def := p.Definition()
		for _, v := range vs {
			if v.State != postgres.Serving || postgres.BaseFingerprint(v.ID) == def.Fingerprint() {
				continue
			}
			if err := def.CheckUnqualified(); err != nil {
				problems = append(problems, &config.Error{File: cfg.File, Line: p.Line, Projection: p.Name, Msg: err.Error()})
			}
		}
	}
	if len(problems) > 0 {
		return &config.ValidationError{Errors: problems}
	}
	return nil
}
