package versioning

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/postgres"
)

// errNothingToRollBack is wrapped by Rollback's error when there is no version to roll back
// to.
var errNothingToRollBack = errors.New("nothing to roll back to")

// Rollback swaps the most recently archived version of projection name (one whose tables are
// kept in its archive schema) back in for the serving version, which is archived in turn. The
// version swapped back catches up from its own position. Running daemons see the change and
// restart the projection with the version now serving.
func Rollback(ctx context.Context, store *postgres.Store, name string) (postgres.Version, postgres.Swapped, error) {
	vs, err := store.Versions(ctx, name)
	if err != nil {
		return postgres.Version{}, postgres.Swapped{}, err
	}
	var serving, back *postgres.Version
	for i := range vs {
		v := &vs[i]
		switch {
		case v.State == postgres.Serving:
			serving = v
		case v.State == postgres.Archived && (back == nil || v.SwappedAt.After(back.SwappedAt)):
			ok, err := store.SchemaExists(ctx, postgres.ArchiveSchema(name, v.ID))
			if err != nil {
				return postgres.Version{}, postgres.Swapped{}, err
			}
			if ok {
				back = v
			}
		}
	}
	switch {
	case serving == nil:
		return postgres.Version{}, postgres.Swapped{}, fmt.Errorf("rollback %q: no version serves it yet (start the daemon first): %w", name, errNothingToRollBack)
	case back == nil:
		return postgres.Version{}, postgres.Swapped{}, fmt.Errorf("rollback %q: no earlier version keeps its tables (a version adopted with on_change: continue keeps none): %w", name, errNothingToRollBack)
	}
	if back.Definition.Partitions > 1 {
		// Its partitions had got to different positions, which one archived row cannot keep:
		// the version swapped back would apply again what its partitions ahead had applied.
		return postgres.Version{}, postgres.Swapped{}, fmt.Errorf("rollback %q: version %s ran in %d partitions, whose positions an archived version does not keep: rebuild it instead (restore its definition in the projections file): %w",
			name, back.ID, back.Definition.Partitions, errNothingToRollBack)
	}
	rels, err := store.RelationsOf(ctx, serving.Definition)
	if err != nil {
		return postgres.Version{}, postgres.Swapped{}, err
	}
	done, err := store.Swap(ctx, postgres.Swap{Projection: name, In: back.ID, InSchema: postgres.ArchiveSchema(name, back.ID), Out: serving.ID, OutRelations: rels, OutPartitions: serving.Definition.Partitions})
	if err != nil {
		return postgres.Version{}, postgres.Swapped{}, fmt.Errorf("rollback %q: %w", name, err)
	}
	return *back, done, nil
}

// Rebuild records a new build of the serving definition of p's projection (version
// <fingerprint>~N), abandoning any other build: the daemon that leads it builds it in a shadow
// schema and swaps it in, as it does a changed definition. It returns the new version.
func Rebuild(ctx context.Context, store *postgres.Store, file string, p *config.Projection) (string, error) {
	vs, err := store.Versions(ctx, p.Name)
	if err != nil {
		return "", err
	}
	var serving *postgres.Version
	for i := range vs {
		if vs[i].State == postgres.Serving {
			serving = &vs[i]
		}
	}
	if serving == nil {
		return "", fmt.Errorf("rebuild %q: no version serves it yet: start the daemon first", p.Name)
	}
	if _, problem, err := Buildable(ctx, store, file, p, serving.Definition, serving.Definition); err != nil || problem != nil {
		if problem != nil {
			return "", &config.ValidationError{Errors: []*config.Error{problem}}
		}
		return "", err
	}
	base := postgres.BaseFingerprint(serving.ID)
	n := 0
	for _, v := range vs {
		if _, suffix, ok := strings.Cut(v.ID, "~"); ok && postgres.BaseFingerprint(v.ID) == base {
			if k, err := strconv.Atoi(suffix); err == nil && k > n {
				n = k
			}
		}
		if v.State == postgres.Building {
			if err := store.DropVersion(ctx, p.Name, v.ID); err != nil {
				return "", err
			}
		}
	}
	id := fmt.Sprintf("%s~%d", base, n+1)
	def := serving.Definition
	keep := p.KeepArchives
	def.OnDependency, def.KeepArchives = string(p.OnDependency), &keep // the file's policies for this build's swap
	if err := store.RecordVersion(ctx, def, id, postgres.Building); err != nil {
		return "", err
	}
	return id, nil
}

// Commands takes the HTTP API's rebuild and rollback commands (an httpapi.Versioner) for the
// projections of a projections file.
type Commands struct {
	Store  *postgres.Store
	Config *config.Config
}

var _ httpapi.Versioner = Commands{}

// Rebuild implements httpapi.Versioner (see the function Rebuild).
func (c Commands) Rebuild(ctx context.Context, name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	if _, err := Rebuild(ctx, c.Store, c.Config.File, p); err != nil {
		if config.IsValidation(err) {
			return fmt.Errorf("%w: %w", httpapi.ErrRefused, err)
		}
		return err
	}
	return nil
}

// Rollback implements httpapi.Versioner (see the function Rollback).
func (c Commands) Rollback(ctx context.Context, name string) error {
	if _, err := c.find(name); err != nil {
		return err
	}
	if _, _, err := Rollback(ctx, c.Store, name); err != nil {
		if errors.Is(err, errNothingToRollBack) {
			return fmt.Errorf("%w: %w", httpapi.ErrRefused, err)
		}
		return err
	}
	return nil
}

func (c Commands) find(name string) (*config.Projection, error) {
	for i := range c.Config.Projections {
		if c.Config.Projections[i].Name == name {
			return &c.Config.Projections[i], nil
		}
	}
	return nil, fmt.Errorf("%q: %w", name, tracking.ErrUnknownProjection)
}

// Cancel abandons the version of projection name that is building, if any: its shadow schema,
// tracking row and stored version are dropped, and running daemons stop building it. It
// returns the version abandoned ("" when none was building). A daemon whose projections file
// holds that definition builds it again when it starts.
func Cancel(ctx context.Context, store *postgres.Store, name string) (string, error) {
	vs, err := store.Versions(ctx, name)
	if err != nil {
		return "", err
	}
	for _, v := range vs {
		if v.State == postgres.Building {
			return v.ID, store.DropVersion(ctx, name, v.ID)
		}
	}
	return "", nil
}
