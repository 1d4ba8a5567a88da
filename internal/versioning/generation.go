package versioning

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/declarative"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// Generation is one run of the daemon's projections with the versions of a plan: the serving
// version of each projection and, for those that have one, the version building in its
// shadow schema, as a projection of its own (tracked as name@version). It swaps a built
// version in once it has caught up, and whenever a projection's stored versions no longer
// match what it runs (after its own swap, or another replica's, or a rollback or rebuild
// command) it restarts that projection alone with its stored versions (see renew); only when
// that fails does it ask for a restart of all the projections (Restart).
type Generation struct {
	projection.NopObserver // and BatchCommitted, counting the events of each build

	store   *postgres.Store
	entries []Entry
	header  projection.Header // for the head in progress reports; nil for none
	log     *zap.Logger
	// Every is how often the stored versions are compared and a swap is tried (default 1s);
	// ProgressEvery how often a build's progress is logged (default 5s).
	Every, ProgressEvery time.Duration

	// refusedAt is when a swap refused for dependents was last logged, by projection (used by
	// Watch's goroutine only).
	refusedAt map[string]time.Time

	restart     chan struct{}
	restartOnce sync.Once

	// Replan plans the projections again (Plan), for a projection whose versions changed; nil
	// ends the generation at every change instead (Restart).
	Replan func(ctx context.Context) ([]Entry, error)
	// Handled, when set, is called with the serving versions' projections (Handlers) after a
	// projection has been restarted with a new version.
	Handled func(handlers []projection.Projection[pgx.Tx])

	mu       sync.Mutex
	live     *daemon.Live[pgx.Tx] // the running projections, to restart one (see renew)
	runner   *projection.Runner[pgx.Tx]
	progress map[string]*Progress // by projection name, for the versions building
	handlers []projection.Projection[pgx.Tx]
}

// Handlers returns the serving versions' projections, one event at a time (a batch
// projection's SQL over one event): what a dead letter is replayed through.
func (g *Generation) Handlers() []projection.Projection[pgx.Tx] {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]projection.Projection[pgx.Tx](nil), g.handlers...)
}

// New prepares a generation of entries on store: it compiles each version, points the
// store's version guard of each at it, and creates the shadow schema (with its tables) of
// each version building. header, when not nil, gives the head of $all to progress reports.
func New(ctx context.Context, store *postgres.Store, entries []Entry, header projection.Header, log *zap.Logger) (*Generation, []daemon.Projection[pgx.Tx], error) {
	g := &Generation{store: store, entries: entries, header: header, log: log, Every: time.Second, ProgressEvery: 5 * time.Second,
		restart: make(chan struct{}), progress: map[string]*Progress{}, refusedAt: map[string]time.Time{}}
	var out []daemon.Projection[pgx.Tx]
	for _, e := range entries {
		serving, ps, progress, err := g.prepare(ctx, e)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, ps...)
		g.handlers = append(g.handlers, serving)
		if progress != nil {
			g.progress[e.Name] = progress
		}
	}
	return g, out, nil
}

// prepare compiles e's versions, points the store's version guard of each at it, and creates
// the shadow schema (with its tables) of the version building, if any. It returns the serving
// version's projection (what dead letters are replayed through), the projections to run (the
// serving version, and the version building as a projection of its own), and the progress of
// the build (nil for none).
func (g *Generation) prepare(ctx context.Context, e Entry) (*declarative.Projection, []daemon.Projection[pgx.Tx], *Progress, error) {
	store, log := g.store, g.log
	serving, err := compile(e.Name, e.Serving)
	if err != nil {
		return nil, nil, nil, err
	}
	// The serving version runs partitioned as it was built; its partitions are tracked
	// (and guarded) under their own names.
	opts := e.Project.Options
	opts.Partitions, opts.PartitionBy = e.Serving.Partitions, e.Serving.PartitionBy
	for _, tracked := range TrackingNames(e.Name, e.Serving) {
		if err := store.Guard(ctx, tracked, e.Name, e.ServingID, postgres.Serving); err != nil {
			return nil, nil, nil, err
		}
	}
	store.SetPartitions(e.Name, e.Serving.Partitions)
	out := []daemon.Projection[pgx.Tx]{{Projection: serving.Runnable(), Options: opts, Reset: serving.ResetView}}
	if e.Building == nil {
		return serving, out, nil, nil
	}
	shadowName := postgres.VersionTracking(e.Name, e.BuildingID)
	shadow, err := compile(shadowName, *e.Building)
	if err != nil {
		return nil, nil, nil, err
	}
	deferred, err := store.PrepareShadow(ctx, *e.Building, e.BuildingID)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(deferred) > 0 {
		log.Info("building without the secondary indexes: they are created once the new version has caught up, before the swap",
			zap.String("projection", e.Name), zap.String("version", e.BuildingID), zap.Strings("indexes", indexNames(deferred)))
	}
	if err := store.Guard(ctx, shadowName, e.Name, e.BuildingID, postgres.Building); err != nil {
		return nil, nil, nil, err
	}
	progress := &Progress{Version: e.BuildingID, Tracking: shadowName, Schema: postgres.ShadowSchema(e.Name, e.BuildingID)}
	// A version builds unpartitioned, under one tracking row: the swap gives its position
	// to every partition of the version it serves as (see postgres.Store.Swap).
	buildOpts := e.Project.Options
	buildOpts.Partitions, buildOpts.PartitionBy = 0, ""
	buildOpts.CheckpointEvery = BuildCheckpointEvery
	out = append(out, daemon.Projection[pgx.Tx]{Projection: shadow.Runnable(), Options: buildOpts})
	return serving, out, progress, nil
}

// BuildCheckpointEvery is how often, at most, a building version commits a checkpoint-only
// advance of its tracking (projection.ProjectionOptions.CheckpointEvery; the serving versions
// keep the runner's, 1s by default). Several such commits fall within the swap's wait for the
// new version (postgres.DefaultCatchUpWait), so a version whose own events are rare on a busy
// log still reaches the serving version's position while the swap holds it.
const BuildCheckpointEvery = postgres.DefaultCatchUpWait / 5

// TrackingNames returns the names the serving version def of projection name is tracked and
// leased under: the name, or the name of each of its partitions (projection.PartitionName).
func TrackingNames(name string, def versions.Definition) []string {
	if def.Partitions < 2 {
		return []string{name}
	}
	out := make([]string, def.Partitions)
	for i := range out {
		out[i] = projection.PartitionName(name, i)
	}
	return out
}

// compile builds the declarative projection of def, tracked as name.
func compile(name string, def versions.Definition) (*declarative.Projection, error) {
	spec := declarative.Spec{Name: name, Schema: def.Schema, Reset: def.Reset, Topics: def.BatchTopics, Batch: def.Batch}
	for _, h := range def.Handlers {
		spec.Handlers = append(spec.Handlers, declarative.Handler{Topic: h.Topic, SQL: h.SQL})
	}
	p, err := declarative.New(spec)
	if err != nil {
		return nil, fmt.Errorf("projection %q: compile the stored definition: %w", def.Name, err)
	}
	return p, nil
}

// Running is the daemon.Config.Running of the generation: it keeps the runner, whose status
// tells whether this process leads a build and how far it has got.
func (g *Generation) Running(r *projection.Runner[pgx.Tx]) {
	g.mu.Lock()
	g.runner = r
	g.mu.Unlock()
}

// Restart is closed when the generation is over: the daemon stops its projections and starts
// the next generation.
func (g *Generation) Restart() <-chan struct{} { return g.restart }

func (g *Generation) stop(why string, fields ...zap.Field) {
	g.restartOnce.Do(func() {
		g.log.Info(why+": restarting the projections", fields...)
		close(g.restart)
	})
}

// Watch compares the stored versions with the generation's and tries the swaps, every Every,
// until ctx ends or the generation is over.
func (g *Generation) Watch(ctx context.Context) {
	t := time.NewTicker(g.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.restart:
			return
		case <-t.C:
		}
		for i := range g.entries {
			if !g.current(ctx, i) {
				return
			}
			if g.entries[i].Building != nil && !g.build(ctx, i) {
				return
			}
		}
	}
}

// current checks that entry i's stored versions are still those the generation runs, and
// restarts the projection with its stored versions when they are not (renew). It reports
// false when the generation is over.
func (g *Generation) current(ctx context.Context, i int) bool {
	e := &g.entries[i]
	vs, err := g.store.Versions(ctx, e.Name)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("cannot read the versions", zap.String("projection", e.Name), zap.Error(err))
		}
		return true
	}
	var serving, building string
	for _, v := range vs {
		switch v.State {
		case postgres.Serving:
			serving = v.ID
		case postgres.Building:
			building = v.ID
		}
	}
	if serving != e.ServingID || building != e.BuildingID {
		return g.renew(ctx, i, "the versions changed")
	}
	return true
}

// build reports the progress of entry i's version building and swaps it in once this process
// leads it and it has caught up with the serving version, then restarts the projection with
// its new version (renew). It reports false when the generation is over.
func (g *Generation) build(ctx context.Context, i int) bool {
	e := &g.entries[i]
	g.mu.Lock()
	r, p := g.runner, g.progress[e.Name]
	g.mu.Unlock()
	if r == nil {
		return true
	}
	// The serving position first, the shadow's after it: on a busy log both move all the
	// time, and the shadow, as far as the serving version was a moment before, is close
	// enough for the swap, which holds the serving version while the shadow catches up.
	serving, _, err := g.store.LoadProjection(ctx, e.Name)
	if err != nil {
		return true
	}
	var shadow projection.Status
	found := false
	for _, st := range r.Status() {
		if st.Name == p.Tracking {
			shadow, found = st, true
		}
	}
	if !found || !shadow.Leader {
		return true
	}
	head := uint64(0)
	if g.header != nil {
		if pos, _, err := g.header.Head(ctx); err == nil {
			head = pos.Commit
		}
	}
	p.update(shadow.Position, serving.Reached(), head, time.Now())
	if p.due(g.ProgressEvery, time.Now()) {
		snap := p.Snapshot()
		g.log.Info("building a new version", zap.String("projection", e.Name), zap.String("version", e.BuildingID),
			zap.Uint64("position", snap.Position), zap.Uint64("serving_position", snap.ServingPosition), zap.Uint64("head", snap.Head),
			zap.Float64("events_per_second", snap.EventsPerSecond), zap.Duration("eta", snap.ETA))
	}
	if !shadow.CaughtUp || shadow.Position < serving.Reached() || time.Now().Before(p.swapNotBefore()) {
		return true
	}
	built, took, err := g.store.BuildDeferredIndexes(ctx, e.Name, e.BuildingID)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("cannot build the new version's deferred indexes; trying again", zap.String("projection", e.Name),
				zap.String("version", e.BuildingID), zap.Error(err))
		}
		return true
	}
	if len(built) > 0 {
		g.log.Info("built the new version's deferred indexes", zap.String("projection", e.Name), zap.String("version", e.BuildingID),
			zap.Strings("indexes", indexNames(built)), zap.Duration("took", took))
	}
	rels, err := g.store.RelationsOf(ctx, e.Serving)
	if err != nil {
		g.log.Warn("swap: cannot list the serving tables", zap.String("projection", e.Name), zap.Error(err))
		return true
	}
	deps, ok := g.dependents(ctx, e, rels)
	if !ok {
		return true
	}
	done, err := g.store.Swap(ctx, postgres.Swap{Projection: e.Name, In: e.BuildingID, InSchema: p.Schema,
		Out: e.ServingID, OutRelations: rels, OutPartitions: e.Serving.Partitions, CaughtUp: true})
	switch {
	case errors.Is(err, postgres.ErrNotCaughtUp):
		// Readers waited for nothing: the next tries come further apart.
		p.missedSwap(g.Every, time.Now())
		return true
	case errors.Is(err, postgres.ErrDeferredIndexes):
		return true
	case err != nil:
		if ctx.Err() == nil {
			g.log.Warn("swap failed; trying again", zap.String("projection", e.Name), zap.Error(err))
		}
		return true
	}
	g.log.Info("swapped in the new version", zap.String("projection", e.Name), zap.String("version", e.BuildingID),
		zap.String("previous_version", e.ServingID), zap.String("archive_schema", postgres.ArchiveSchema(e.Name, e.ServingID)),
		zap.Uint64("position", done.State.Reached()), zap.Duration("readers_blocked", done.Blocked))
	if len(deps) > 0 {
		g.log.Warn("relations of others still point at the old tables, now archived (on_dependency: proceed): re-create them on the live tables",
			zap.String("projection", e.Name), zap.Strings("dependents", deps), zap.String("archive_schema", postgres.ArchiveSchema(e.Name, e.ServingID)))
	}
	g.prune(ctx, e)
	return g.renew(ctx, i, "new version serving")
}

// prune drops, after a swap, the tables of e's archived versions beyond the keep_archives most
// recent ones, and says so; a failure only delays it to the next swap.
func (g *Generation) prune(ctx context.Context, e *Entry) {
	keep := e.keepArchives()
	pruned, err := g.store.PruneArchives(ctx, e.Name, keep)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("cannot drop the tables of older archived versions; trying again at the next swap", zap.String("projection", e.Name), zap.Error(err))
		}
		return
	}
	if len(pruned.Dropped) > 0 {
		g.log.Info("dropped the tables of older archived versions (their definitions stay recorded)", zap.String("projection", e.Name),
			zap.Strings("versions", pruned.Dropped), zap.Int("keep_archives", keep))
	}
	for id, deps := range pruned.Held {
		g.log.Warn("kept the tables of an archived version past keep_archives: relations of others depend on them", zap.String("projection", e.Name),
			zap.String("version", id), zap.String("archive_schema", postgres.ArchiveSchema(e.Name, id)), zap.Strings("dependents", deps))
	}
}

// dependents returns the relations of others that depend on e's live tables rels, just before
// the swap, and whether the swap may go on: under on_dependency refuse, not while there are
// any (some may have been created since the build started); it warns then, every
// ProgressEvery.
func (g *Generation) dependents(ctx context.Context, e *Entry, rels []postgres.Relation) ([]string, bool) {
	deps, err := g.store.Dependents(ctx, rels)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("swap: cannot list what depends on the live tables", zap.String("projection", e.Name), zap.Error(err))
		}
		return nil, false
	}
	if len(deps) == 0 || e.onDependency() == config.OnDependencyProceed {
		return deps, true
	}
	if now := time.Now(); now.Sub(g.refusedAt[e.Name]) >= g.ProgressEvery {
		g.refusedAt[e.Name] = now
		g.log.Warn("swap waits: other relations depend on the live tables and would not move with them (on_dependency: refuse); drop them, or set on_dependency: proceed",
			zap.String("projection", e.Name), zap.String("version", e.BuildingID), zap.Strings("dependents", deps))
	}
	return deps, false
}

// indexNames returns the names of ds.
func indexNames(ds []postgres.DeferredIndex) []string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	return names
}
