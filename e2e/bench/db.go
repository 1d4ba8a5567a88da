package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/internal/faultproxy"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// Database is a database the benchmark created on the test server (the one of
// PROJECTOR_TEST_DATABASE_URL, by default 127.0.0.1:5432, as the tests pick it).
type Database struct {
	Name string
	URL  string
}

// CreateDatabase creates a uniquely named database whose name starts with prefix.
func CreateDatabase(ctx context.Context, prefix string) (Database, error) {
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil || u.Scheme == "" {
		return Database{}, fmt.Errorf("PROJECTOR_TEST_DATABASE_URL %q: want a postgres:// URL", pgtest.URL())
	}
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		return Database{}, fmt.Errorf("connect to %s (is PostgreSQL running? set PROJECTOR_TEST_DATABASE_URL): %w", pgtest.AdminURL(), err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return Database{}, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return Database{Name: name, URL: u.String()}, nil
}

// Drop drops the database, closing the connections left on it.
func (d Database) Drop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		return fmt.Errorf("drop database %s: %w", d.Name, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.Name, err)
	}
	return nil
}

// ServerVersion returns the PostgreSQL server's version string.
func ServerVersion(ctx context.Context, dbURL string) (string, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("read the server version: %w", err)
	}
	return v, nil
}

// latencyProxy starts a proxy to the tests' PostgreSQL server that delays each direction by d.
func latencyProxy(d time.Duration) (*faultproxy.Proxy, error) {
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL URL: %w", err)
	}
	p, err := faultproxy.New(u.Host)
	if err != nil {
		return nil, fmt.Errorf("a proxy to PostgreSQL: %w", err)
	}
	p.SetLatency(d)
	return p, nil
}

// daemonURL is dbURL as `projector run` reaches it: through PostgresVia, when set.
func (b Binaries) daemonURL(dbURL string) (string, error) {
	if b.PostgresVia == "" {
		return dbURL, nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("the database URL: %w", err)
	}
	u.Host = b.PostgresVia
	return u.String(), nil
}
