// Package pgtest gives tests a PostgreSQL pool in a schema of their own, or a database of their
// own, dropped when the test ends. The server is the one of PROJECTOR_TEST_DATABASE_URL, by
// default the local test database (postgres://postgres@127.0.0.1:5432/test): schemas are made
// in that database, databases through the postgres database of the same server. A missing
// server fails the test: it is not skipped. scripts/with-postgres.sh (make test) sets the
// variable to a throwaway server when none runs on 127.0.0.1:5432.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the database tests use unless PROJECTOR_TEST_DATABASE_URL is set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test database's connection string.
func URL() string {
	if u := os.Getenv("PROJECTOR_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// AdminURL returns the connection string NewDatabase creates databases through: the postgres
// database of URL's server.
func AdminURL() string {
	u, err := url.Parse(URL())
	if err != nil || u.Scheme == "" {
		return URL() // NewDatabase reports it
	}
	u.Path = "/postgres"
	return u.String()
}

// Addr returns the host:port of URL's server (port 5432 when URL names none), for tests that
// reach it through a proxy.
func Addr(t testing.TB) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(URL())
	if err != nil {
		t.Fatalf("pgtest: PROJECTOR_TEST_DATABASE_URL %q: %v", URL(), err)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// uniqueName is prefix followed by 12 random hex digits.
func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewDatabase creates a uniquely named database (its name starts with prefix) on the server of
// AdminURL, drops it when t ends (closing any connection left open), and returns its URL.
func NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	u, err := url.Parse(AdminURL())
	if err != nil || u.Scheme == "" {
		t.Fatalf("pgtest: PROJECTOR_TEST_DATABASE_URL %q: want a postgres:// URL", URL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v (is PostgreSQL running? scripts/with-postgres.sh runs a command with a throwaway one)", AdminURL(), err)
	}
	name := uniqueName(prefix)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		_ = admin.Close(context.Background())
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer func() { _ = admin.Close(context.Background()) }()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// NewSchema creates a uniquely named schema, drops it (with everything in it) when t ends,
// and returns its name.
func NewSchema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, URL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v (is PostgreSQL running? scripts/with-postgres.sh runs a command with a throwaway one)", URL(), err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	schema := uniqueName("test_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, URL())
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// Config returns a pool configuration for schema: its connections use schema as search_path.
func Config(t testing.TB, schema string) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(URL())
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", URL(), err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	return cfg
}

// Pool returns a pool on schema, closed when t ends (before the schema is dropped, when the
// schema was created first in the same test).
func Pool(t testing.TB, schema string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), Config(t, schema))
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
