package daemon

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/projection"
)

var _ httpapi.Versioner = (*current)(nil)

// Rebuild implements httpapi.Versioner with the daemon's Options.Versions.
func (c *current) Rebuild(ctx context.Context, name string) error {
	return c.version(ctx, "rebuild", name, httpapi.Versioner.Rebuild)
}

// Rollback implements httpapi.Versioner with the daemon's Options.Versions.
func (c *current) Rollback(ctx context.Context, name string) error {
	return c.version(ctx, "rollback", name, httpapi.Versioner.Rollback)
}

func (c *current) version(ctx context.Context, verb, name string, run func(httpapi.Versioner, context.Context, string) error) error {
	if _, err := c.commandable(projection.Command(verb), name); err != nil {
		return err
	}
	if c.versions == nil {
		return fmt.Errorf("%s %q: this daemon's projections are not versioned: %w", verb, name, httpapi.ErrUnavailable)
	}
	if err := run(c.versions, ctx, name); err != nil {
		return err
	}
	c.log.Info(verb+" recorded: the daemons restart the projection with its versions", zap.String("projection", name))
	return nil
}

// SetRebuilds sets what reports the versions building, for /v1/projections.
func (d *Daemon) SetRebuilds(f func() map[string]httpapi.RebuildJSON) {
	d.prov.mu.Lock()
	d.prov.rebuilds = f
	d.prov.mu.Unlock()
}

// Rebuilds implements httpapi.RebuildReporter.
func (p *Provider) Rebuilds() map[string]httpapi.RebuildJSON {
	p.mu.Lock()
	f := p.rebuilds
	p.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}
