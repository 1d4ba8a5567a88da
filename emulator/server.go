package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultVersion is the KurrentDB server version the emulator reports unless
// Options.Version says otherwise.
const DefaultVersion = "25.1.0"

// maxRecvMsgSize bounds one inbound gRPC message. KurrentDB accepts events of
// up to 16 MiB and its clients accept messages of up to 17 MiB; the margin
// leaves room for the envelope of a maximal event.
const maxRecvMsgSize = 32 << 20

// Options configure Start. The zero value serves plaintext gRPC on a free
// loopback port from an in-memory log.
type Options struct {
	// Listen is the address of the plaintext (h2c) gRPC listener, with
	// authentication disabled as on an insecure KurrentDB node. Empty means
	// "127.0.0.1:0": a free loopback port.
	Listen string

	// TLSListen, when not empty, adds a TLS gRPC listener on this address
	// ("127.0.0.1:0" picks a free port). It authenticates users as a secure
	// KurrentDB node does (admin:changeit and ops:changeit).
	TLSListen string
	// TLSCertFile and TLSKeyFile name a PEM key pair for the TLS listener.
	TLSCertFile, TLSKeyFile string
	// TLSCertificate is the TLS listener's key pair, used when the files are
	// not given. When neither is set, a self-signed certificate for localhost
	// and 127.0.0.1 is generated at start.
	TLSCertificate *tls.Certificate

	// DataDir persists the log in this directory and reloads it at start.
	// Empty keeps everything in memory.
	DataDir string

	// Version is the KurrentDB version reported by ServerFeatures, in
	// Major.Minor.Patch form. Empty means DefaultVersion.
	Version string

	// Logger receives the server's logs. Nil discards them.
	Logger *zap.Logger

	// SeparateStores gives the TLS listener its own log, as in the real test
	// set-up where the secure and the insecure node are two servers. With a
	// DataDir, the logs live in its "insecure" and "secure" subdirectories.
	SeparateStores bool

	// AdvertiseHost is the host Gossip reports for this node. Empty means the
	// listener's host ("localhost" when it listens on every interface).
	AdvertiseHost string

	// MaxAppendEventSize and MaxAppendSize limit the size of one event and of
	// one append, in KurrentDB's accounting (data + metadata + 2×type); an
	// append also counts a fixed record overhead per event, so empty events
	// are not free. Zero means KurrentDB 25.1's defaults,
	// DefaultMaxAppendEventSize and DefaultMaxAppendSize.
	MaxAppendEventSize, MaxAppendSize int

	// MaxAppendEvents caps the events of one append request (an Append, one
	// BatchAppend write, or an AppendSession across its streams). Zero means
	// DefaultMaxAppendEvents.
	MaxAppendEvents int

	// MaxSubscriptions caps the subscriptions each log serves at once; one
	// more fails with ResourceExhausted until one ends. Zero means
	// DefaultMaxSubscriptions.
	MaxSubscriptions int

	// FilterBudget is the time a server-side filter may spend matching one
	// page of records; a read or subscription whose filter outlasts it ends
	// with ResourceExhausted. Zero means DefaultFilterBudget.
	FilterBudget time.Duration

	// Now is the clock used to stamp events. Nil means time.Now.
	Now func() time.Time
}

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *zap.Logger
	version string
	tlsConf *tls.Config
	stores  []*Store
	persist map[*Store]*persistentServer // persistent subscription groups per log
	latency atomic.Int64                 // time.Duration added to every RPC

	mu        sync.Mutex
	endpoints []*endpoint // plaintext first, then TLS when configured
	closed    bool
}

// Start opens the log and starts the listeners. The server runs until Close;
// ctx bounds only the start-up.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{opts: opts, log: opts.Logger, version: opts.Version}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.version == "" {
		s.version = DefaultVersion
	}
	if _, err := parseVersion(s.version); err != nil {
		return nil, fmt.Errorf("emulator: Options.Version: %w", err)
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	secure := opts.TLSListen != ""
	if secure {
		conf, err := serverTLSConfig(opts)
		if err != nil {
			return nil, fmt.Errorf("emulator: TLS listener: %w", err)
		}
		s.tlsConf = conf
	}

	plainStore, tlsStore, err := s.openStores(secure)
	if err != nil {
		return nil, err
	}
	s.endpoints = append(s.endpoints, &endpoint{addr: listen, store: plainStore})
	if secure {
		s.endpoints = append(s.endpoints, &endpoint{secure: true, addr: opts.TLSListen, store: tlsStore})
	}
	for _, ep := range s.endpoints {
		if err := s.listen(ctx, ep, false); err != nil {
			s.stopEndpoints(false)
			_ = s.closeStores()
			return nil, err
		}
	}
	for _, ep := range s.endpoints {
		s.serve(ep)
	}
	s.log.Info("kurrentdb emulator started",
		zap.String("listen", s.endpoints[0].addr),
		zap.String("tls_listen", s.tlsAddr()),
		zap.String("data", opts.DataDir),
		zap.String("version", s.version))
	return s, nil
}

// openStores opens the plaintext listener's store and the TLS listener's
// (the same one unless Options.SeparateStores is set).
func (s *Server) openStores(secure bool) (plain, sec *Store, err error) {
	if !secure || !s.opts.SeparateStores {
		st, err := OpenStore(s.storeOptions(s.opts.DataDir, secure))
		if err != nil {
			return nil, nil, fmt.Errorf("emulator: open log: %w", err)
		}
		s.stores = []*Store{st}
		return st, st, nil
	}
	sub := func(name string) string {
		if s.opts.DataDir == "" {
			return ""
		}
		return filepath.Join(s.opts.DataDir, name)
	}
	plain, err = OpenStore(s.storeOptions(sub("insecure"), false))
	if err != nil {
		return nil, nil, fmt.Errorf("emulator: open insecure log: %w", err)
	}
	sec, err = OpenStore(s.storeOptions(sub("secure"), true))
	if err != nil {
		_ = plain.Close()
		return nil, nil, fmt.Errorf("emulator: open secure log: %w", err)
	}
	s.stores = []*Store{plain, sec}
	return plain, sec, nil
}

// storeOptions are the options of a store of this server.
func (s *Server) storeOptions(dataDir string, secure bool) StoreOptions {
	return StoreOptions{DataDir: dataDir, Secure: secure, Now: s.opts.Now, Logger: s.log,
		FilterBudget: s.opts.FilterBudget, MaxSubscriptions: s.opts.MaxSubscriptions}
}

// URI is the connection string of the plaintext listener, for example
// "kurrentdb://127.0.0.1:2113?tls=false".
func (s *Server) URI() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "kurrentdb://" + s.endpoints[0].addr + "?tls=false"
}

// Addr is the bound address of the plaintext listener.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints[0].addr
}

// TLSAddr is the bound address of the TLS listener, or "" without one.
func (s *Server) TLSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsAddr()
}

func (s *Server) tlsAddr() string {
	if len(s.endpoints) < 2 {
		return ""
	}
	return s.endpoints[1].addr
}

// TLSURI is the connection string of the TLS listener with the admin
// credentials, for example
// "kurrentdb://admin:changeit@127.0.0.1:2115?tls=true&tlsverifycert=false".
// Certificate verification is off because the certificate may be
// self-signed; set tlsCAFile instead to verify it. TLSURI is "" when the
// server has no TLS listener.
func (s *Server) TLSURI() string {
	addr := s.TLSAddr()
	if addr == "" {
		return ""
	}
	return "kurrentdb://admin:changeit@" + addr + "?tls=true&tlsverifycert=false"
}

// Close stops the server gracefully: subscriptions end with Unavailable, RPCs
// in flight get a few seconds to finish, then connections are closed, every
// goroutine ends and the log is closed (flushed when persisted).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.dropSubscriptions(status.Error(codes.Unavailable, "Server Is Shutting Down"))
	s.stopEndpoints(true)
	err := s.closeStores()
	s.log.Info("kurrentdb emulator stopped")
	return err
}

// stopEndpoints stops every endpoint's gRPC server and waits for it. With
// graceful set, RPCs in flight get a grace period before being cancelled.
func (s *Server) stopEndpoints(graceful bool) {
	var wg sync.WaitGroup
	for _, ep := range s.endpoints {
		if ep.gs == nil {
			if ep.lis != nil {
				_ = ep.lis.Close()
				ep.lis = nil
			}
			continue
		}
		wg.Add(1)
		go func(ep *endpoint) {
			defer wg.Done()
			if graceful {
				stopped := make(chan struct{})
				go func() { ep.gs.GracefulStop(); close(stopped) }()
				select {
				case <-stopped:
				case <-time.After(3 * time.Second):
					ep.gs.Stop()
					<-stopped
				}
			} else {
				ep.gs.Stop()
			}
			<-ep.done
			ep.gs, ep.lis = nil, nil
		}(ep)
	}
	wg.Wait()
}

func (s *Server) closeStores() error {
	var errs []error
	for _, st := range s.stores {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dropSubscriptions ends every active subscription on every store.
func (s *Server) dropSubscriptions(err error) {
	for _, st := range s.stores {
		st.DropSubscriptions(err)
	}
}
