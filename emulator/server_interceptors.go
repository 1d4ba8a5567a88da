package emulator

import (
	"context"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recoverUnary turns a panic in a unary handler into an Internal error and
// logs it, so bad input never takes the server down.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in rpc handler", zap.String("method", info.FullMethod),
				zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}

// recoverStream is recoverUnary for streaming calls.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in rpc handler", zap.String("method", info.FullMethod),
				zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, ss)
}

// delay waits for the latency set with SetLatency, or until ctx ends.
func (s *Server) delay(ctx context.Context) error {
	d := time.Duration(s.latency.Load())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// latencyUnary adds the configured latency to unary calls.
func (s *Server) latencyUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.delay(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// latencyStream adds the configured latency to streaming calls.
func (s *Server) latencyStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.delay(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// logUnary logs every unary call at debug level.
func (s *Server) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.log.Core().Enabled(zap.DebugLevel) {
		return handler(ctx, req)
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	s.log.Debug("rpc", zap.String("method", info.FullMethod), zap.Stringer("code", status.Code(err)),
		zap.Duration("took", time.Since(start)), zap.Error(err))
	return resp, err
}

// logStream logs every streaming call at debug level when it ends.
func (s *Server) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.log.Core().Enabled(zap.DebugLevel) {
		return handler(srv, ss)
	}
	start := time.Now()
	err := handler(srv, ss)
	s.log.Debug("rpc", zap.String("method", info.FullMethod), zap.Stringer("code", status.Code(err)),
		zap.Duration("took", time.Since(start)), zap.Error(err))
	return err
}
