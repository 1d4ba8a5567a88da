package main

import (
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// Secrets planted in the environment, each unlike anything else in the output.
const (
	plantedDBPassword      = "pgPWq7Zx81Kd"
	plantedKurrentPassword = "kdbPWVn3Rw9Lp"
	plantedToken           = "tokHj5Gm2Xs0c"
)

// secretEnv is an environment with the planted secrets in DATABASE_URL, KURRENTDB_URI (both
// pointing at closed ports) and PROJECTOR_ADMIN_TOKEN, and extra after them.
func secretEnv(t *testing.T, extra ...string) []string {
	closed := testbin.FreeAddr(t)
	return testbin.Env(append([]string{
		"DATABASE_URL=postgres://app:" + plantedDBPassword + "@" + closed + "/app?connect_timeout=2",
		"KURRENTDB_URI=kurrentdb://admin:" + plantedKurrentPassword + "@" + closed + "?tls=false",
		"PROJECTOR_ADMIN_TOKEN=" + plantedToken,
		"PROJECTOR_CONFIG=../../examples/training_school.yaml",
		"PROJECTOR_HTTP_ADDR=" + testbin.FreeAddr(t),
	}, extra...)...)
}

// leaked returns the planted secrets (or a part of one) that out shows.
func leaked(out string) []string {
	var found []string
	for _, s := range []string{plantedDBPassword, plantedKurrentPassword, plantedToken} {
		for i := 0; i+6 <= len(s); i++ {
			if strings.Contains(out, s[i:i+6]) {
				found = append(found, s)
				break
			}
		}
	}
	return found
}

// The help of every command shows the variables' names as the flags' defaults, never their
// values.
func TestHelpShowsNoSecret(t *testing.T) {
	t.Parallel()
	env := secretEnv(t)
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"migrate", "--help"}, {"status", "--help"}, {"reset", "--help"},
		{"wait", "--help"}, {"resume", "--help"}, {"skip", "--help"}, {"demo", "--help"}, {"version", "--help"}, {"help", "resume"}} {
		code, out, errOut := runProjector(t, env, args...)
		if code != 0 {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
		if l := leaked(out + errOut); len(l) > 0 {
			t.Errorf("%v shows %v:\n%s%s", args, l, out, errOut)
		}
		if args[0] == "run" {
			for _, want := range []string{"(default $DATABASE_URL)", "(default $KURRENTDB_URI)", "(default $PROJECTOR_ADMIN_TOKEN)",
				"(default $PROJECTOR_HTTP_ADDR, else :9090)", "run projector migrate separately"} {
				if !strings.Contains(out, want) {
					t.Errorf("run --help lacks %q:\n%s", want, out)
				}
			}
		}
	}
}

// A malformed KURRENTDB_URI or DATABASE_URL is refused (exit 2) naming the variable and what is
// wrong, without its password.
func TestMalformedConnectionStringsShowNoPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args      []string
		env, want string
	}{
		{[]string{"run"}, "KURRENTDB_URI=kurrentdb://admin:" + plantedKurrentPassword + "@localhost:notaport?tls=false", "invalid port"},
		{[]string{"run"}, "KURRENTDB_URI=kurrentdb://admin:" + plantedKurrentPassword + "%zz@localhost:2113", "invalid URL escape"},
		{[]string{"run"}, "KURRENTDB_URI=kurrentdb://admin:" + plantedKurrentPassword + "/x@localhost:2113", "KURRENTDB_URI"},
		{[]string{"status"}, "KURRENTDB_URI=esdb://admin:" + plantedKurrentPassword + "@localhost:2113/path", ""},
		{[]string{"migrate"}, "DATABASE_URL=postgres://app:" + plantedDBPassword + "@localhost:port/db", "DATABASE_URL: not a PostgreSQL URL or DSN"},
		{[]string{"migrate"}, "DATABASE_URL=postgres://app:" + plantedDBPassword + "%zz@localhost/db", "DATABASE_URL: not a PostgreSQL URL or DSN"},
		{[]string{"migrate"}, "DATABASE_URL=postgres://app:" + url.QueryEscape(plantedDBPassword+"/?") + "@localhost:x/db", "DATABASE_URL"},
		{[]string{"migrate"}, "DATABASE_URL=host=localhost user=app password=" + plantedDBPassword + " sslmode=bogus", "DATABASE_URL: not a PostgreSQL URL or DSN"},
		{[]string{"migrate"}, "DATABASE_URL=host=localhost password='" + plantedDBPassword + " x' port=notaport", "DATABASE_URL: not a PostgreSQL URL or DSN"},
	} {
		code, out, errOut := runProjector(t, secretEnv(t, tc.env), tc.args...)
		if l := leaked(out + errOut); len(l) > 0 {
			t.Errorf("%s %v shows %v:\n%s%s", tc.env, tc.args, l, out, errOut)
		}
		if tc.want != "" && (code != 2 || !strings.Contains(errOut, tc.want)) {
			t.Errorf("%s %v: exit %d %s, want 2 and %s", tc.env, tc.args, code, errOut, tc.want)
		}
	}
}

// The logs of a daemon that cannot connect, to PostgreSQL and then to KurrentDB, and of its
// shutdown, show no secret.
func TestLogsShowNoSecret(t *testing.T) {
	t.Parallel()
	env := secretEnv(t)
	d := start(t, projectorBin, env, "run")
	poll.Until(t, 30*time.Second, "PostgreSQL connection failures are logged", func() bool {
		return strings.Count(d.Output(), "connect to PostgreSQL: failed; retrying") >= 2
	})
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit %d on SIGTERM", code)
	}
	if l := leaked(d.Output()); len(l) > 0 {
		t.Errorf("the logs show %v:\n%s", l, d.Output())
	}

	dbURL, _ := newDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), plantedDBPassword) // trust auth ignores it
	d = start(t, projectorBin, append(secretEnv(t), "DATABASE_URL="+u.String()), "run")
	poll.Until(t, 60*time.Second, "KurrentDB connection failures are logged", func() bool {
		return strings.Count(d.Output(), "connect to KurrentDB: failed; retrying") >= 2
	})
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit %d on SIGTERM", code)
	}
	if l := leaked(d.Output()); len(l) > 0 {
		t.Errorf("the logs show %v:\n%s", l, d.Output())
	}
	if !strings.Contains(d.Output(), `"commands":"enabled: they require the admin token"`) {
		t.Errorf("the start does not say that the commands are enabled:\n%s", d.Output())
	}
}
