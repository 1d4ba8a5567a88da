package httpapi

import (
	"context"
	"errors"
	"fmt"
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
