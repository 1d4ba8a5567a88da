package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Versioner takes the commands on a projection's versions. The daemon's Controller implements
// it when its projections are versioned (declarative projections); without it, the commands
// answer 503.
type Versioner interface {
	// Rebuild builds the projection's serving definition again in a shadow schema and swaps it
	// in once it has caught up.
	Rebuild(ctx context.Context, name string) error
	// Rollback swaps the projection's previous version back in.
	Rollback(ctx context.Context, name string) error
}

// ErrRefused is wrapped by the error of a command that cannot be carried out as things are
// (no previous version to roll back to, a definition that cannot be rebuilt); the API answers
// 409 with the reason.
var ErrRefused = errors.New("refused")

// versionCommand returns the command that runs verb (rebuild or rollback) on the Controller's
// Versioner.
func (a *api) versionCommand(verb string, run func(v Versioner, ctx context.Context, name string) error) commandFunc {
	return func(ctx context.Context, name string) error {
		v, ok := a.o.Controller.(Versioner)
		if !ok {
			return fmt.Errorf("%s %q: this server has no versioned projections: %w", verb, name, ErrUnavailable)
		}
		return run(v, ctx, name)
	}
}

// RebuildJSON is the progress of a new version of a projection building in its shadow schema,
// on the projection's entry of /v1/projections (on the replica that builds it).
type RebuildJSON struct {
	Version      string `json:"version"`
	ShadowSchema string `json:"shadow_schema"`
	// Position is the new version's position; ServingPosition the serving version's, which it
	// must reach before the swap.
	Position        uint64  `json:"position"`
	ServingPosition uint64  `json:"serving_position"`
	Head            *uint64 `json:"head,omitempty"`
	// EventsPerSecond and PositionsPerSecond are the build's speed; ETASeconds the time until
	// it reaches the serving position at that speed, absent when unknown.
	EventsPerSecond    float64  `json:"events_per_second"`
	PositionsPerSecond float64  `json:"positions_per_second"`
	ETASeconds         *float64 `json:"eta_seconds,omitempty"`
}

// RebuildReporter is implemented by a Provider that reports the versions building, by the
// name of the projection they will serve.
type RebuildReporter interface {
	Rebuilds() map[string]RebuildJSON
}

// isVersionBuild reports whether name is the tracking name of a version building (NAME@VERSION:
// a projection's own name has no @). A build never makes the replica unready: the serving
// version answers the reads, and a build that stops shows in /v1/projections and the status.
func isVersionBuild(name string) bool { return strings.Contains(name, "@") }
