// Restarting one projection with its new versions, leaving the daemon's other projections
// running.

package versioning

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres"
)

// Live is the daemon.Config.Live of the generation: it keeps the running projections, so that
// a version change restarts only the projection it is about.
func (g *Generation) Live(l *daemon.Live[pgx.Tx]) {
	g.mu.Lock()
	g.live = l
	g.mu.Unlock()
}

// renew restarts the projection of entry i with its stored versions, because of why: it plans
// the projections again (Replan) and takes the projection's new entry, stops the projection
// and its version building (each finishes or rolls back its batch in flight and releases its
// lease), prepares the new versions (guards, shadow schema) and starts them. The daemon's other
// projections go on undisturbed. When any step fails it ends the generation instead (Restart),
// as a change did before projections could be restarted one by one; it reports whether the
// generation goes on.
func (g *Generation) renew(ctx context.Context, i int, why string, fields ...zap.Field) bool {
	old := g.entries[i]
	fields = append([]zap.Field{zap.String("projection", old.Name)}, fields...)
	g.mu.Lock()
	live := g.live
	g.mu.Unlock()
	if live == nil || g.Replan == nil {
		g.stop(why, fields...)
		return false
	}
	fail := func(step string, err error) bool {
		if ctx.Err() == nil {
			g.log.Warn("cannot restart the projection alone: "+step, append(fields, zap.Error(err))...)
		}
		g.stop(why, fields...)
		return false
	}
	entries, err := g.Replan(ctx)
	if err != nil {
		return fail("plan its versions", err)
	}
	var next *Entry
	for j := range entries {
		if entries[j].Name == old.Name {
			next = &entries[j]
		}
	}
	if next == nil {
		return fail("plan its versions", errNotPlanned)
	}
	running := []string{old.Name}
	if old.Building != nil {
		running = append(running, postgres.VersionTracking(old.Name, old.BuildingID))
	}
	if err := live.Remove(ctx, running...); err != nil {
		return fail("stop it", err)
	}
	serving, ps, progress, err := g.prepare(ctx, *next)
	if err != nil {
		return fail("prepare its versions", err)
	}
	if err := live.Add(ps...); err != nil {
		return fail("start it", err)
	}
	g.mu.Lock()
	g.entries[i] = *next
	g.handlers[i] = serving
	delete(g.progress, old.Name)
	if progress != nil {
		g.progress[old.Name] = progress
	}
	handlers := append([]projection.Projection[pgx.Tx](nil), g.handlers...)
	g.mu.Unlock()
	if g.Handled != nil {
		g.Handled(handlers)
	}
	g.log.Info(why+": restarting the projection with its versions, the others running on", append(fields,
		zap.String("serving_version", next.ServingID), zap.String("building_version", next.BuildingID))...)
	return true
}

// errNotPlanned is renew's error when the new plan has no entry for the projection.
var errNotPlanned = errors.New("the projections file no longer has it")
