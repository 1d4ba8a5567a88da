package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// The HTTP server's defaults. A wait request may last up to its own timeout (the wait API's
// maximum is 5m): its handler extends the write deadline for it, so WriteTimeout bounds every
// other answer.
const (
	// DefaultReadHeaderTimeout bounds the reading of a request's headers: a client that sends
	// them byte by byte is cut off.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds the reading of a whole request, body included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds the writing of an answer (waits: their timeout plus a margin).
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection that sends no request for this long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds a request's headers (an admin token is at most 4 KiB).
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultMaxBodyBytes bounds a request's body: no endpoint reads one.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultConnectionHeadroom is how many connections the server accepts beyond the wait cap,
	// for probes, metrics, status and the answers that refuse waits.
	DefaultConnectionHeadroom = 1024
)

// ServerOptions tune the HTTP server; a zero field takes its default.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	MaxBodyBytes      int64
	// MaxConnections caps the connections open at once; beyond it new ones wait to be
	// accepted (default DefaultConnectionHeadroom more than the wait cap).
	MaxConnections int
}

func (o ServerOptions) withDefaults(maxWaits int) ServerOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = max(maxWaits, 0) + DefaultConnectionHeadroom
	}
	return o
}

// Server is the daemon's HTTP server.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen starts serving h on addr (":0" picks a free port) with the timeouts and limits of o
// (see ServerOptions; maxWaits is the wait cap the connection limit leaves room for).
func Listen(addr string, h http.Handler, o ServerOptions, maxWaits int) (*Server, error) {
	o = o.withDefaults(maxWaits)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP listener on %s: %w", addr, err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           http.MaxBytesHandler(h, o.MaxBodyBytes),
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
		},
		ln:   netutil.LimitListener(ln, o.MaxConnections),
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server, letting requests in flight finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serr := <-s.done; serr != nil && err == nil {
		err = serr
	}
	return err
}
