package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/redact"
	"github.com/projector-dev/projector/views/postgres"
)

// openDB opens a pool on the settings' DATABASE_URL. With retry, an unreachable PostgreSQL is
// retried with backoff (logged) until ctx ends; without, the first failure is returned.
func (a *app) openDB(ctx context.Context, log *zap.Logger, retry bool) (*pgxpool.Pool, error) {
	if err := a.settings.Validate(false, true); err != nil {
		return nil, err
	}
	conn := a.settings.DatabaseURL
	cfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		return nil, &config.Error{File: config.EnvDatabaseURL, Msg: fmt.Sprintf("not a PostgreSQL URL or DSN: %v", redact.Error(err, conn))}
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", redact.Error(err, conn))
	}
	ping := func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := pool.Ping(pctx); err != nil {
			return fmt.Errorf("PostgreSQL at %s: %w", dbName(cfg), redact.Error(err, conn))
		}
		return nil
	}
	if retry {
		err = daemon.Retry(ctx, log, "connect to PostgreSQL", 500*time.Millisecond, 30*time.Second, ping)
	} else {
		err = ping(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// openStore opens the database as openDB does and a Store on it; closeDB closes both.
func (a *app) openStore(ctx context.Context, log *zap.Logger, retry bool) (pool *pgxpool.Pool, store *postgres.Store, closeDB func(), err error) {
	pool, err = a.openDB(ctx, log, retry)
	if err != nil {
		return nil, nil, nil, err
	}
	store = postgres.New(pool, postgres.Options{})
	return pool, store, func() {
		_ = store.Close()
		pool.Close()
	}, nil
}

// dbName names the database of cfg without its password.
func dbName(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// migrate applies Projector's migrations and the schema of each projection of cfg.
func migrate(ctx context.Context, pool *pgxpool.Pool, store *postgres.Store, cfg *config.Config, log *zap.Logger) error {
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	if cfg == nil {
		return nil
	}
	for _, p := range cfg.Projections {
		if err := p.Compiled.Migrate(ctx, pool); err != nil {
			return err
		}
		log.Info("schema applied", zap.String("projection", p.Name))
	}
	return nil
}

// checkSQL prepares every handler statement of cfg against PostgreSQL; problems come back as a
// *config.ValidationError naming file, line, projection and key.
func checkSQL(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config) error {
	var all config.ValidationError
	for i := range cfg.Projections {
		p := &cfg.Projections[i]
		err := cfg.SQLErrors(p, p.Compiled.Check(ctx, pool))
		if err == nil {
			continue
		}
		if v, ok := err.(*config.ValidationError); ok {
			all.Errors = append(all.Errors, v.Errors...)
			continue
		}
		return fmt.Errorf("check the SQL of projection %q: %w", p.Name, err)
	}
	if len(all.Errors) > 0 {
		return &all
	}
	return nil
}
