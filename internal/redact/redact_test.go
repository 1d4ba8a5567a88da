package redact_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/internal/redact"
)

const pw = "Pl4nted-s3cret"

// The error of parsing each malformed connection string (url.Parse quotes the whole string;
// pgx names it, and wraps url.Parse's error), once redacted, holds neither the password nor a
// part of it, and still names what is wrong.
func TestParseErrorsRedacted(t *testing.T) {
	for _, tc := range []struct {
		conn, want string
	}{
		{"kurrentdb://admin:" + pw + "@host:notaport?tls=false", "invalid port"},
		{"kurrentdb://admin:" + pw + "%zz@host:2113", "invalid URL escape"},
		{"kurrentdb://admin:" + pw + "/x@host:2113", "invalid port"},
		{"kurrentdb://admin:" + pw + "?x@host:2113", "invalid port"},
		{"kurrentdb://admin:" + pw + "@host:2113/\x7f", "invalid control character"},
		{"postgres://app:" + pw + "%zz@db:5432/x", "invalid URL escape"},
		{"postgres://app:" + pw + "@db:port/x", "invalid port"},
		{"postgres://app:" + url.QueryEscape(pw+" /@") + "@db:port/x", "invalid port"},
	} {
		_, err := url.Parse(tc.conn)
		if err == nil {
			t.Fatalf("%q parses", tc.conn)
		}
		got := redact.Error(fmt.Errorf("wrapped: %w", err), tc.conn).Error()
		if leaks(got) || !strings.Contains(got, tc.want) {
			t.Errorf("%q: %s, want it to say %s without the password", tc.conn, got, tc.want)
		}
		if !strings.HasPrefix(tc.conn, "postgres") {
			continue
		}
		_, err = pgxpool.ParseConfig(tc.conn)
		if got := redact.Error(err, tc.conn).Error(); leaks(got) || !strings.Contains(got, "cannot parse") {
			t.Errorf("pgx %q: %s", tc.conn, got)
		}
	}
}

// leaks reports whether s holds the password or a part of it of 4 bytes or more.
func leaks(s string) bool {
	for i := 0; i+4 <= len(pw); i++ {
		if strings.Contains(s, pw[i:i+4]) {
			return true
		}
	}
	return false
}

// Key=value conninfo strings, quoted or not, and URL queries lose their passwords too.
func TestConnInfo(t *testing.T) {
	for conn, want := range map[string]string{
		"host=db user=app password=" + pw + " dbname=x":         "host=db user=app password=xxxxx dbname=x",
		"host=db password='" + pw + " x\\'y' dbname=x":          "host=db password=xxxxx dbname=x",
		"host=db sslpassword=" + pw + " PASSWORD = " + pw + "2": "host=db sslpassword=xxxxx PASSWORD =xxxxx",
		"postgres://db/x?user=app&password=" + pw + "&a=b":      "postgres://db/x?user=app&password=xxxxx&a=b",
		"kurrentdb://admin:" + pw + "@host:2113?tls=false":      "kurrentdb://admin:xxxxx@host:2113?tls=false",
		"kurrentdb://host:2113?tls=false":                       "kurrentdb://host:2113?tls=false",
	} {
		if got := redact.Conn(conn); got != want || leaks(got) {
			t.Errorf("Conn(%q) = %q, want %q", conn, got, want)
		}
	}
	if got := redact.String("failed: user=app "+pw, redact.Secrets("password="+pw)...); got != "failed: user=app xxxxx" {
		t.Errorf("String = %q", got)
	}
}

// Error keeps the chain for errors.Is, and nil stays nil.
func TestErrorWraps(t *testing.T) {
	base := errors.New("connect " + pw)
	err := redact.Error(fmt.Errorf("ping: %w", base), "postgres://u:"+pw+"@h/d")
	if !errors.Is(err, base) || err.Error() != "ping: connect xxxxx" {
		t.Errorf("Error = %v (is base: %v)", err, errors.Is(err, base))
	}
	if redact.Error(nil, "x") != nil {
		t.Error("Error(nil) is not nil")
	}
}
