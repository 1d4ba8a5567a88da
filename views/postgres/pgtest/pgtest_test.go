package pgtest_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// The schema, the database and the address all come from the one server of
// PROJECTOR_TEST_DATABASE_URL.
func TestSchemaDatabaseAndAddrShareOneServer(t *testing.T) {
	ctx := context.Background()
	schema := pgtest.NewSchema(t)
	pool := pgtest.Pool(t, schema)
	var searchPath string
	var port int
	if err := pool.QueryRow(ctx, `SELECT current_setting('search_path'), inet_server_port()`).Scan(&searchPath, &port); err != nil {
		t.Fatal(err)
	}
	if searchPath != schema {
		t.Errorf("search_path = %q, want %q", searchPath, schema)
	}
	if _, p, _ := net.SplitHostPort(pgtest.Addr(t)); p != strconv.Itoa(port) {
		t.Errorf("Addr() = %s, but the server of %s listens on port %d", pgtest.Addr(t), pgtest.URL(), port)
	}
	if !strings.Contains(pgtest.AdminURL(), "/postgres") {
		t.Errorf("AdminURL() = %s, want the postgres database", pgtest.AdminURL())
	}

	t.Logf("server %s (port %d)", pgtest.Addr(t), port)

	dbURL := pgtest.NewDatabase(t, "pgtest_")
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var db string
	if err := conn.QueryRow(ctx, `SELECT current_database() || ':' || inet_server_port()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db, "pgtest_") || !strings.HasSuffix(db, ":"+strconv.Itoa(port)) {
		t.Errorf("the new database is %s, want pgtest_… on port %d", db, port)
	}
}
