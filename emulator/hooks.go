package emulator

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DropSubscriptions ends every active subscription (catch-up and live, on
// every listener) with err, which should be a gRPC status error such as
// status.Error(codes.Unavailable, "…"). New subscriptions are not affected.
func (s *Server) DropSubscriptions(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropSubscriptions(err)
}

// SetLatency adds d to the start of every RPC from now on; 0 removes it.
func (s *Server) SetLatency(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s.latency.Store(int64(d))
}

// Restart simulates a server restart: it stops the listeners, cutting every
// connection and RPC at once, then listens again on the same addresses with
// the same data. Clients see Unavailable and reconnect. While a port is still
// busy it retries until ctx ends.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("emulator: restart of a closed server")
	}
	s.dropSubscriptions(status.Error(codes.Unavailable, "Server Is Restarting"))
	s.stopEndpoints(false)
	for _, ep := range s.endpoints {
		if err := s.listen(ctx, ep, true); err != nil {
			s.stopEndpoints(false) // closes the listeners bound so far
			return err
		}
	}
	for _, ep := range s.endpoints {
		s.serve(ep)
	}
	s.log.Info("kurrentdb emulator restarted", zap.String("listen", s.endpoints[0].addr))
	return nil
}
