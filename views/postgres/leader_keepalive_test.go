package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// tcpSettings reads the TCP settings of the lease's own backend, on its lock connection.
func tcpSettings(t *testing.T, l *Lease) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	rows, err := l.conn.Query(ctx, `SELECT name, setting FROM pg_settings
		WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count', 'tcp_user_timeout')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]string)
	for rows.Next() {
		var name, setting string
		if err := rows.Scan(&name, &setting); err != nil {
			t.Fatal(err)
		}
		got[name] = setting
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestLockConnectionHasTCPKeepalives(t *testing.T) {
	t.Parallel()
	schema := pgtest.NewSchema(t)
	server := func() map[string]string {
		cfg := pgtest.Config(t, schema).ConnConfig
		e := NewElector(cfg, ElectorOptions{KeepaliveIdle: -1, KeepaliveInterval: -1, KeepaliveCount: -1, TCPUserTimeout: -1})
		l, err := e.AcquireLease(context.Background(), "server-defaults")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(context.Background())
		return tcpSettings(t, l)
	}()

	for _, c := range []struct {
		name   string
		params map[string]string
		opts   ElectorOptions
		want   map[string]string
	}{
		{"defaults", nil, ElectorOptions{},
			map[string]string{"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3", "tcp_user_timeout": "30000"}},
		{"options", nil, ElectorOptions{KeepaliveIdle: 7 * time.Second, KeepaliveInterval: 1500 * time.Millisecond, KeepaliveCount: 4, TCPUserTimeout: 12 * time.Second},
			map[string]string{"tcp_keepalives_idle": "7", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "4", "tcp_user_timeout": "12000"}},
		{"the user's values are kept", map[string]string{"tcp_keepalives_idle": "42", "options": "-c tcp_user_timeout=9000"}, ElectorOptions{},
			map[string]string{"tcp_keepalives_idle": "42", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3", "tcp_user_timeout": "9000"}},
		{"negative leaves the server's setting", nil, ElectorOptions{KeepaliveCount: -1},
			map[string]string{"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": server["tcp_keepalives_count"], "tcp_user_timeout": "30000"}},
	} {
		cfg := pgtest.Config(t, schema).ConnConfig
		for k, v := range c.params {
			cfg.RuntimeParams[k] = v
		}
		l, err := NewElector(cfg, c.opts).AcquireLease(context.Background(), "p-"+c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := tcpSettings(t, l)
		_ = l.Release(context.Background())
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: lock backend %s = %q, want %q (all: %v)", c.name, k, got[k], v, got)
			}
		}
	}
	if len(cfgParams(t)) != 0 {
		t.Error("NewElector changed the caller's configuration")
	}
}

// cfgParams is what NewElector leaves in the caller's configuration's TCP parameters.
func cfgParams(t *testing.T) map[string]string {
	cfg := pgtest.Config(t, "public").ConnConfig
	NewElector(cfg, ElectorOptions{})
	out := make(map[string]string)
	for k, v := range cfg.RuntimeParams {
		if k != "search_path" {
			out[k] = v
		}
	}
	return out
}
