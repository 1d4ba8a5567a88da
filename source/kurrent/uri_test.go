package kurrent_test

import (
	"strings"
	"testing"

	"github.com/projector-dev/projector/source/kurrent"
)

// A malformed connection string is refused with an error that says what is wrong but holds
// no part of its password (the URL parser quotes the whole string).
func TestMalformedURIErrorHidesThePassword(t *testing.T) {
	const pw = "Pl4nted-kdb-s3cret"
	for uri, want := range map[string]string{
		"kurrentdb://admin:" + pw + "@localhost:notaport?tls=false": "invalid port",
		"kurrentdb://admin:" + pw + "%zz@localhost:2113":            "invalid URL escape",
		"kurrentdb://admin:" + pw + "/x@localhost:2113":             "invalid port",
		"esdb://admin:" + pw + "@localhost:2113/path":               "unsupported URL path",
		"kurrentdb://admin:" + pw + "@a:1:2?tls=false":              "wrong host format",
	} {
		_, err := kurrent.NewClient(uri, kurrent.ClientOptions{})
		if err == nil {
			t.Errorf("%q: no error", uri)
			continue
		}
		_, derr := kurrent.Dial(uri, kurrent.ClientOptions{}, kurrent.Options{})
		for _, e := range []error{err, derr} {
			msg := e.Error()
			if !strings.Contains(msg, "kurrent: connection string") || !strings.Contains(msg, want) {
				t.Errorf("%q: %s, want it to say %s", uri, msg, want)
			}
			for i := 0; i+4 <= len(pw); i++ {
				if strings.Contains(msg, pw[i:i+4]) {
					t.Errorf("%q: the error holds part of the password: %s", uri, msg)
					break
				}
			}
		}
	}
}
