// Package redact keeps passwords and tokens out of error messages and logs: it finds the
// secrets a connection string holds, also one that does not parse, and masks them wherever
// they show in a text.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// keyValuePassword matches a password in key=value form: a libpq conninfo (password=s3cret or
// password='s 3cret'), or a URL query (?password=s3cret&...); sslpassword too.
var keyValuePassword = regexp.MustCompile(`(?i)\b(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&'"]+)`)

// minPart is the length from which a part of a password is masked on its own: shorter parts
// would mask common words.
const minPart = 3

// quoted matches a double-quoted snippet of an error message, such as the one an invalid
// escape is reported with.
var quoted = regexp.MustCompile(`"[^"]*"`)

// Secrets returns the secrets the connection string conn holds: the password of its userinfo
// (scheme://user:password@host; for a URL that does not parse, what lies between the first ':'
// after the user and the last '@'), and every password or sslpassword value in key=value form.
// Each comes raw and, when it differs, percent-decoded.
func Secrets(conn string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
		// A URL parser cuts a password holding '/', '?' or '#' there, and may report a part
		// (as the port, or the path): those parts are secrets too.
		if parts := strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '?' || r == '#' }); len(parts) > 1 {
			for _, p := range parts {
				if len(p) >= minPart {
					out = append(out, p)
				}
			}
		}
	}
	if _, rest, ok := strings.Cut(conn, "://"); ok {
		// As a URL parser sees it: the authority ends at the first '/', and the userinfo at
		// its last '@'; and as a person may have meant it: the userinfo ends at the last '@'.
		for _, authority := range []string{strings.SplitN(rest, "/", 2)[0], rest} {
			if at := strings.LastIndex(authority, "@"); at >= 0 {
				if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
					add(pw)
				}
			}
		}
	}
	for _, m := range keyValuePassword.FindAllStringSubmatch(conn, -1) {
		v := m[1]
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			add(v[1 : len(v)-1])
			v = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v[1 : len(v)-1])
		}
		add(v)
	}
	// The longest first, so that a secret holding another is masked whole.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// String returns s with every secret masked: each secret itself, its percent-encoded forms,
// any password in key=value form, and any double-quoted snippet that is part of a secret (as
// url.Parse quotes the bad escape of a password).
func String(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec)} {
			s = strings.ReplaceAll(s, form, Mask)
		}
	}
	s = keyValuePassword.ReplaceAllStringFunc(s, func(m string) string {
		key, _, _ := strings.Cut(m, "=")
		return key + "=" + Mask
	})
	return quoted.ReplaceAllStringFunc(s, func(q string) string {
		inner := q[1 : len(q)-1]
		for _, sec := range secrets {
			if len(inner) >= 2 && strings.Contains(sec, inner) {
				return `"` + Mask + `"`
			}
		}
		return q
	})
}

// Conn returns the connection string conn with its secrets masked, for a message that must
// name it.
func Conn(conn string) string { return String(conn, Secrets(conn)...) }

// Error returns err with the secrets of the connection string conn masked in its message, or
// nil for a nil err. The error it returns still wraps err, for errors.Is and errors.As.
func Error(err error, conn string) error {
	if err == nil {
		return nil
	}
	return &redacted{msg: String(err.Error(), Secrets(conn)...), err: err}
}

// redacted is an error whose message has its secrets masked.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
