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
		serving, err := servingVersion(ctx, store, p.Name)
		if err != nil {
			return err
		}
		if serving != nil && postgres.BaseFingerprint(serving.ID) != p.Definition().Fingerprint() {
			// The live tables are the serving version's: the daemon builds the file's
			// version in a shadow schema (or adopts or refuses it, per on_change).
			log.Info("schema not applied: the definition differs from the serving version's", zap.String("projection", p.Name),
				zap.String("serving_version", serving.ID), zap.String("file_version", p.Definition().Fingerprint()))
			continue
		}
		if err := p.Compiled.Migrate(ctx, pool); err != nil {
			return err
		}
		log.Info("schema applied", zap.String("projection", p.Name))
	}
	return nil
}

// servingVersion returns the version serving projection name, nil when there is none.
func servingVersion(ctx context.Context, store *postgres.Store, name string) (*postgres.Version, error) {
	vs, err := store.Versions(ctx, name)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		if vs[i].State == postgres.Serving {
			return &vs[i], nil
		}
	}
	return nil, nil
}

// checkSQL prepares every handler statement of cfg against PostgreSQL; problems come back as a
// *config.ValidationError naming file, line, projection and key.
func checkSQL(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config) error {
	var all config.ValidationError
	for i := range cfg.Projections {
		p := &cfg.Projections[i]
		// In a scratch schema: the live tables may be those of an older version.
		err := cfg.SQLErrors(p, p.Compiled.Check(ctx, postgres.ScratchConn{Pool: pool}))
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
