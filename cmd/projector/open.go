// What the commands about one projection open before they act: configuration, projection, store.

package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/views/postgres"
)

// openedProjection is what a command about one projection works with: the logger, the
// configuration, the projection and the store (closed by close).
type openedProjection struct {
	log   *zap.Logger
	cfg   *config.Config
	p     *config.Projection
	store *postgres.Store
	close func()
}

// openProjection loads the configuration, finds projection name in it, and opens the store.
func (a *app) openProjection(ctx context.Context, name string) (openedProjection, error) {
	log, cfg, err := a.loggerAndConfig()
	if err != nil {
		return openedProjection{}, err
	}
	p, err := findProjection(cfg, name)
	if err != nil {
		return openedProjection{}, err
	}
	_, store, closeDB, err := a.openStore(ctx, log, false)
	if err != nil {
		return openedProjection{}, err
	}
	return openedProjection{log: log, cfg: cfg, p: p, store: store, close: closeDB}, nil
}

// servingPartitions tells store how many partitions the serving version of projection name
// runs in, as its stored definition says, so that a wait for it waits for every partition.
func servingPartitions(ctx context.Context, store *postgres.Store, name string) error {
	vs, err := store.Versions(ctx, name)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.State == postgres.Serving {
			store.SetPartitions(name, v.Definition.Partitions)
		}
	}
	return nil
}
