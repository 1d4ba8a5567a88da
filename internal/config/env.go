package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The environment variables Projector reads.
const (
	EnvKurrentDBURI       = "KURRENTDB_URI"
	EnvKurrentDBRootCerts = "KURRENTDB_ROOT_CERTIFICATES"
	EnvDatabaseURL        = "DATABASE_URL"
	EnvHTTPAddr           = "PROJECTOR_HTTP_ADDR"
	EnvLogLevel           = "PROJECTOR_LOG_LEVEL"
	EnvLogFormat          = "PROJECTOR_LOG_FORMAT"
	EnvConfig             = "PROJECTOR_CONFIG"
	EnvDrainTimeout       = "PROJECTOR_DRAIN_TIMEOUT"
	EnvAdminToken         = "PROJECTOR_ADMIN_TOKEN"
	EnvAdminTokenFile     = "PROJECTOR_ADMIN_TOKEN_FILE"
	EnvMaxWaits           = "PROJECTOR_MAX_WAITS"
	EnvMemberID           = "PROJECTOR_MEMBER_ID"
	EnvSharedRead         = "PROJECTOR_SHARED_READ"
	EnvPprofAddr          = "PROJECTOR_PPROF_ADDR"
	DefaultHTTPAddr       = ":9090"
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "json"
	DefaultDrainTimeout   = "30s"
	DefaultSharedRead     = "on"
	// DefaultMaxWaits is how many wait requests the HTTP API serves at once by default.
	DefaultMaxWaits          = 10000
	defaultRootCertsFileHint = "PEM text or the path of a PEM file"
)

// The Go runtime's standard variable for the garbage collector's target, which the daemon
// (projector run) reads to keep its own default.
const (
	// EnvGOGC is the garbage collector's target percentage (the Go runtime reads it).
	EnvGOGC = "GOGC"
	// DefaultGOGC is the daemon's target when GOGC is unset: the heap grows to three times what
	// is live before a collection, rather than the runtime's twice (GOGC=100). During catch-up
	// the daemon allocates mostly short-lived decoded events, so this cuts its garbage
	// collection by about half for some 13 MiB more peak RSS (see docs/development.md).
	DefaultGOGC = 200
)

// Settings are the connection and process settings, from the environment and flags.
type Settings struct {
	KurrentDBURI string // any connection string the KurrentDB client accepts
	// KurrentDBRootCertificates is PEM text or the path of a PEM file.
	KurrentDBRootCertificates string
	DatabaseURL               string // libpq URL or DSN
	HTTPAddr                  string
	LogLevel                  string // debug, info, warn, error
	LogFormat                 string // json or console
	ConfigFile                string // the projections YAML file
	// DrainTimeout is how long a stopping daemon lets the batch in flight finish and commit
	// before it rolls it back: a Go duration such as 30s ("0s" rolls back at once).
	DrainTimeout string
	// AdminToken is the shared secret the HTTP API's commands (resume, skip, reset) require as
	// a bearer token; empty disables them. AdminTokenFile names a file holding it instead (a
	// mounted Secret); give one or the other.
	AdminToken     string
	AdminTokenFile string
	// MaxWaits caps the wait requests the HTTP API serves at once (beyond it they answer 503
	// with Retry-After): a whole number, DefaultMaxWaits when empty.
	MaxWaits string
	// MemberID is this replica's id in the membership table the replicas share the projections
	// through; unique per running replica. Empty means the host name and process id.
	MemberID string
	// SharedRead is "on" when the projections (and partitions) of the process share their reads
	// of $all (source/fanout), "off" when each reads on its own subscription.
	SharedRead string
	// PprofAddr is the address of the listener of Go's runtime profiles (/debug/pprof/);
	// empty, the default, serves none.
	PprofAddr string
}

// Setting is one setting read from an environment variable: the variable, the command-line
// flag that overrides it, its built-in default, and the field of Settings it fills.
type Setting struct {
	Env     string
	Flag    string
	Default string
	field   func(*Settings) *string
}

// Of returns the field of s the setting fills.
func (v Setting) Of(s *Settings) *string { return v.field(s) }

// Variables returns every setting read from the environment: the one list of their variables,
// flags and defaults.
func Variables() []Setting {
	return []Setting{
		{EnvKurrentDBURI, "kurrentdb-uri", "", func(s *Settings) *string { return &s.KurrentDBURI }},
		{EnvKurrentDBRootCerts, "kurrentdb-root-certificates", "", func(s *Settings) *string { return &s.KurrentDBRootCertificates }},
		{EnvDatabaseURL, "database-url", "", func(s *Settings) *string { return &s.DatabaseURL }},
		{EnvHTTPAddr, "http-addr", DefaultHTTPAddr, func(s *Settings) *string { return &s.HTTPAddr }},
		{EnvLogLevel, "log-level", DefaultLogLevel, func(s *Settings) *string { return &s.LogLevel }},
		{EnvLogFormat, "log-format", DefaultLogFormat, func(s *Settings) *string { return &s.LogFormat }},
		{EnvConfig, "config", "", func(s *Settings) *string { return &s.ConfigFile }},
		{EnvDrainTimeout, "drain-timeout", DefaultDrainTimeout, func(s *Settings) *string { return &s.DrainTimeout }},
		{EnvAdminToken, "admin-token", "", func(s *Settings) *string { return &s.AdminToken }},
		{EnvAdminTokenFile, "admin-token-file", "", func(s *Settings) *string { return &s.AdminTokenFile }},
		{EnvMaxWaits, "max-waits", strconv.Itoa(DefaultMaxWaits), func(s *Settings) *string { return &s.MaxWaits }},
		{EnvMemberID, "member-id", "", func(s *Settings) *string { return &s.MemberID }},
		{EnvSharedRead, "shared-read", DefaultSharedRead, func(s *Settings) *string { return &s.SharedRead }},
		{EnvPprofAddr, "pprof-addr", "", func(s *Settings) *string { return &s.PprofAddr }},
	}
}

// VariableOfFlag returns the setting whose flag is flag; ok is false for a flag no variable
// backs.
func VariableOfFlag(flag string) (v Setting, ok bool) {
	for _, v := range Variables() {
		if v.Flag == flag {
			return v, true
		}
	}
	return Setting{}, false
}

// FromEnv returns the settings the environment gives, with defaults for the rest. lookup is
// os.LookupEnv in programs; tests pass their own.
func FromEnv(lookup func(string) (string, bool)) Settings {
	var s Settings
	s.Resolve(lookup, func(string) bool { return false })
	return s
}

// Resolve fills every setting whose flag was not given on the command line (given reports
// whether it was, by flag name) from its environment variable, or, when that is unset or empty,
// its built-in default. The flags' own defaults stay empty, so no help text shows a value the
// environment holds (a password, a token).
func (s *Settings) Resolve(lookup func(string) (string, bool), given func(flag string) bool) {
	for _, v := range Variables() {
		if given(v.Flag) {
			continue
		}
		val := v.Default
		if e, ok := lookup(v.Env); ok && e != "" {
			val = e
		}
		*v.Of(s) = val
	}
}

// RootCertificatesPEM returns the PEM text of KurrentDBRootCertificates, reading it from the
// file it names when it is not PEM text itself; empty when unset.
func (s Settings) RootCertificatesPEM() ([]byte, error) {
	v := strings.TrimSpace(s.KurrentDBRootCertificates)
	if v == "" {
		return nil, nil
	}
	if strings.Contains(v, "-----BEGIN") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, &Error{File: EnvKurrentDBRootCerts, Msg: fmt.Sprintf("neither PEM text nor a readable file (%s): %v", defaultRootCertsFileHint, err)}
	}
	if !strings.Contains(string(b), "-----BEGIN") {
		return nil, &Error{File: EnvKurrentDBRootCerts, Msg: fmt.Sprintf("file %s holds no PEM certificate", v)}
	}
	return b, nil
}

// Validate checks the settings a command needs: needKurrent and needDB say which connections.
func (s Settings) Validate(needKurrent, needDB bool) error {
	var errs []*Error
	if needKurrent && s.KurrentDBURI == "" {
		errs = append(errs, &Error{File: EnvKurrentDBURI, Msg: "not set; give the KurrentDB connection string, e.g. kurrentdb://localhost:2113?tls=false (or --kurrentdb-uri)"})
	}
	if needDB && s.DatabaseURL == "" {
		errs = append(errs, &Error{File: EnvDatabaseURL, Msg: "not set; give the PostgreSQL URL, e.g. postgres://user@localhost:5432/db (or --database-url)"})
	}
	switch s.LogFormat {
	case "json", "console":
	default:
		errs = append(errs, &Error{File: EnvLogFormat, Msg: fmt.Sprintf("%q is not a log format; use json or console", s.LogFormat)})
	}
	switch strings.ToLower(s.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, &Error{File: EnvLogLevel, Msg: fmt.Sprintf("%q is not a log level; use debug, info, warn or error", s.LogLevel)})
	}
	if _, err := s.Drain(); err != nil {
		errs = append(errs, err.(*Error))
	}
	if _, err := s.Waits(); err != nil {
		errs = append(errs, err.(*Error))
	}
	if _, err := s.SharesReads(); err != nil {
		errs = append(errs, err.(*Error))
	}
	if err := s.checkMemberID(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

// maxDrainTimeout bounds DrainTimeout: a batch that needs longer is better rolled back.
const maxDrainTimeout = time.Hour

// Drain returns DrainTimeout as a duration, or an *Error naming PROJECTOR_DRAIN_TIMEOUT when it
// is not a duration between 0s and 1h. An empty value means the default, 30s.
func (s Settings) Drain() (time.Duration, error) {
	v := strings.TrimSpace(s.DrainTimeout)
	if v == "" {
		v = DefaultDrainTimeout
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, &Error{File: EnvDrainTimeout, Msg: fmt.Sprintf("%q is not a duration; use a Go duration such as 30s or 1m30s (or --drain-timeout)", s.DrainTimeout)}
	case d < 0:
		return 0, &Error{File: EnvDrainTimeout, Msg: fmt.Sprintf("%q is negative; use 0s to roll back the batch in flight at once, or a positive duration", s.DrainTimeout)}
	case d > maxDrainTimeout:
		return 0, &Error{File: EnvDrainTimeout, Msg: fmt.Sprintf("%q is longer than the maximum %s", s.DrainTimeout, maxDrainTimeout)}
	}
	return d, nil
}

// maxMaxWaits bounds MaxWaits: each wait holds a connection, and so a file descriptor.
const maxMaxWaits = 1_000_000

// Waits returns MaxWaits as a number, or an *Error naming PROJECTOR_MAX_WAITS when it is not a
// whole number between 1 and 1000000. An empty value means the default, DefaultMaxWaits.
func (s Settings) Waits() (int, error) {
	v := strings.TrimSpace(s.MaxWaits)
	if v == "" {
		return DefaultMaxWaits, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxMaxWaits {
		return 0, &Error{File: EnvMaxWaits, Msg: fmt.Sprintf("%q is not a number of waits; use a whole number from 1 to %d (default %d; or --max-waits)", s.MaxWaits, maxMaxWaits, DefaultMaxWaits)}
	}
	return n, nil
}

// SharesReads reports whether the projections of the process share their reads of $all: true
// for "on" (the default), false for "off"; anything else is an *Error naming the variable.
func (s Settings) SharesReads() (bool, error) {
	switch v := strings.TrimSpace(s.SharedRead); v {
	case "", "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, &Error{File: EnvSharedRead, Msg: fmt.Sprintf("%q is neither on nor off (default %s; or --shared-read)", s.SharedRead, DefaultSharedRead)}
}

// maxAdminToken bounds the admin token's length: it travels in an HTTP header.
const maxAdminToken = 4096

// Admin returns the admin token: AdminToken, or the content of AdminTokenFile (without the
// line break and spaces around it); empty when neither is set. It returns an *Error naming the
// variable when both are set, the file cannot be read, or the token is empty, too long, or
// holds a space or control character (it must fit in an Authorization header).
func (s Settings) Admin() (string, error) {
	token, from := s.AdminToken, EnvAdminToken
	switch {
	case s.AdminToken != "" && s.AdminTokenFile != "":
		return "", &Error{File: EnvAdminToken, Msg: "set together with " + EnvAdminTokenFile + "; give the token one way (--admin-token or --admin-token-file)"}
	case s.AdminTokenFile != "":
		from = EnvAdminTokenFile
		b, err := os.ReadFile(s.AdminTokenFile)
		if err != nil {
			return "", &Error{File: EnvAdminTokenFile, Msg: fmt.Sprintf("cannot read the admin token file: %v", err)}
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return "", &Error{File: EnvAdminTokenFile, Msg: fmt.Sprintf("the file %s is empty; it must hold the admin token", s.AdminTokenFile)}
		}
	case s.AdminToken == "":
		return "", nil
	}
	if len(token) > maxAdminToken {
		return "", &Error{File: from, Msg: fmt.Sprintf("the admin token is %d bytes long; at most %d", len(token), maxAdminToken)}
	}
	for i, r := range token {
		if r <= ' ' || r == 0x7f {
			return "", &Error{File: from, Msg: fmt.Sprintf("the admin token holds a space or control character at byte %d; use printable characters only (e.g. a random hex or base64 string)", i)}
		}
	}
	return token, nil
}
