package kurrent

// Connecting to KurrentDB: the client's options, the connection string and the root
// certificates it trusts.

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/internal/redact"
)

// ClientOptions tune NewClient.
type ClientOptions struct {
	// RootCertificates, when not empty, is PEM text of the CAs that sign the server's
	// certificate (as KURRENTDB_ROOT_CERTIFICATES holds it).
	RootCertificates string
	// Logger receives the client's own logs; nil discards them (the runner reports failures
	// through its Observer).
	Logger kurrentdb.LoggingFunc
}

// NewClient connects to the KurrentDB named by uri (a kurrentdb://, kdb://, esdb:// or
// +discover connection string).
func NewClient(uri string, opts ClientOptions) (*kurrentdb.Client, error) {
	cfg, err := clientConfig(uri, opts)
	if err != nil {
		return nil, err
	}
	return newClient(cfg)
}

func clientConfig(uri string, opts ClientOptions) (*kurrentdb.Configuration, error) {
	cfg, err := kurrentdb.ParseConnectionString(uri)
	if err != nil {
		// The parser's errors quote the connection string, password and all.
		return nil, fmt.Errorf("kurrent: connection string: %w", redact.Error(err, uri))
	}
	if strings.TrimSpace(opts.RootCertificates) != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(opts.RootCertificates)) {
			return nil, errors.New("kurrent: root certificates: no PEM certificate found")
		}
		cfg.RootCAs = pool
	}
	cfg.Logger = opts.Logger
	if cfg.Logger == nil {
		cfg.Logger = kurrentdb.NoopLogging()
	}
	return cfg, nil
}

// newClient makes a client on a copy of cfg.
func newClient(cfg *kurrentdb.Configuration) (*kurrentdb.Client, error) {
	c := *cfg
	client, err := kurrentdb.NewClient(&c)
	if err != nil {
		return nil, fmt.Errorf("kurrent: client: %w", err)
	}
	return client, nil
}
