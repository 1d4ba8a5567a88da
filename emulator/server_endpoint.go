package emulator

// One listener of the server with its own gRPC server: binding its address, the services
// and interceptors it serves, and the host and port Gossip advertises for it.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	v2streams "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
)

// endpoint is one listener with its own gRPC server.
type endpoint struct {
	secure bool
	addr   string // bound address, kept across restarts
	store  *Store
	gs     *grpc.Server
	lis    net.Listener
	done   chan struct{} // closed when Serve returns
}

// listen binds ep's address. On a restart the port may still be held by the
// closing listener for a moment, so it retries until ctx ends.
func (s *Server) listen(ctx context.Context, ep *endpoint, retry bool) error {
	var lc net.ListenConfig
	for {
		lis, err := lc.Listen(ctx, "tcp", ep.addr)
		if err == nil {
			ep.lis = lis
			ep.addr = lis.Addr().String()
			return nil
		}
		if !retry || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("emulator: listen on %s: %w", ep.addr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("emulator: listen on %s: %w", ep.addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serve builds ep's gRPC server and starts serving on its listener.
func (s *Server) serve(ep *endpoint) {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
		grpc.WaitForHandlers(true),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.logUnary, s.latencyUnary, s.authUnary(ep.secure), trailerUnary),
		grpc.ChainStreamInterceptor(s.recoverStream, s.logStream, s.latencyStream, s.authStream(ep.secure), trailerStream),
	}
	if ep.secure {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tlsConf)))
	}
	gs := grpc.NewServer(opts...)
	streams.RegisterStreamsServer(gs, &streamsServer{store: ep.store, log: s.log, limits: limitsFrom(s.opts)})
	v2streams.RegisterStreamsServiceServer(gs, &v2StreamsServer{store: ep.store, log: s.log, limits: limitsFrom(s.opts)})
	serverfeatures.RegisterServerFeaturesServer(gs, &featuresServer{version: s.version})
	gossip.RegisterGossipServer(gs, newGossipServer(s.advertise(ep)))
	if s.persist == nil {
		s.persist = map[*Store]*persistentServer{}
	}
	if s.persist[ep.store] == nil {
		s.persist[ep.store] = newPersistentServer()
	}
	persistent.RegisterPersistentSubscriptionsServer(gs, s.persist[ep.store])
	ep.gs = gs
	ep.done = make(chan struct{})
	go func(lis net.Listener, done chan struct{}) {
		defer close(done)
		if err := gs.Serve(lis); err != nil {
			s.log.Error("grpc serve ended", zap.String("addr", ep.addr), zap.Error(err))
		}
	}(ep.lis, ep.done)
}

// advertise is the host and port Gossip reports for ep.
func (s *Server) advertise(ep *endpoint) (string, uint32) {
	host, portStr, _ := net.SplitHostPort(ep.addr)
	port, _ := strconv.ParseUint(portStr, 10, 16)
	if s.opts.AdvertiseHost != "" {
		host = s.opts.AdvertiseHost
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return host, uint32(port)
}
