package emulator

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	v2streams "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
)

// principal is the account a request runs as.
type principal struct {
	name  string
	admin bool // member of $admins (or the system account)
}

// The accounts of the emulator. The insecure listener runs every request as
// the system account; the TLS listener knows the default users of a secure
// KurrentDB node.
var (
	systemPrincipal = &principal{name: "system", admin: true}
	defaultUsers    = map[string]struct {
		password string
		admin    bool
	}{
		"admin": {password: "changeit", admin: true},
		"ops":   {password: "changeit"},
	}
)

type principalKey struct{}

// principalFrom returns the account a request runs as, or nil when it is
// anonymous.
func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// anonymousAllowed reports whether a method works without credentials:
// discovery (ServerFeatures and Gossip) does.
// BatchAppend authorizes each write itself and answers a refused one with an
// AccessDenied result, as KurrentDB does.
func anonymousAllowed(fullMethod string) bool {
	return fullMethod == streams.Streams_BatchAppend_FullMethodName ||
		strings.HasPrefix(fullMethod, "/event_store.client.server_features.ServerFeatures/") ||
		strings.HasPrefix(fullMethod, "/event_store.client.gossip.Gossip/")
}

// errUnauthenticated is the answer to bad credentials.
var errUnauthenticated = status.Error(codes.Unauthenticated, "Unauthenticated")

// errAccessDenied is the answer to an operation the account may not do; it
// goes with the trailer exception=access-denied.
var errAccessDenied = status.Error(codes.PermissionDenied, "Access Denied")

var accessDeniedTrailer = metadata.Pairs("exception", "access-denied")

// authenticate resolves the request's account. On the insecure listener
// every request is the system account and credentials are ignored. On the
// TLS listener a request without an authorization header is anonymous (nil),
// and one with unknown or wrong credentials fails with Unauthenticated.
func authenticate(ctx context.Context, secure bool) (*principal, error) {
	if !secure {
		return systemPrincipal, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, nil
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return nil, errUnauthenticated
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return nil, errUnauthenticated
	}
	login, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errUnauthenticated
	}
	u, known := defaultUsers[login]
	if !known || u.password != password {
		return nil, errUnauthenticated
	}
	return &principal{name: login, admin: u.admin}, nil
}

// authUnary authenticates and authorizes unary calls.
func (s *Server) authUnary(secure bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := authenticate(ctx, secure)
		if err != nil {
			return nil, err
		}
		if p == nil && !anonymousAllowed(info.FullMethod) {
			_ = grpc.SetTrailer(ctx, accessDeniedTrailer)
			return nil, errAccessDenied
		}
		if p != nil && !p.admin && !userMayAccess(req) {
			_ = grpc.SetTrailer(ctx, accessDeniedTrailer)
			return nil, errAccessDenied
		}
		return handler(context.WithValue(ctx, principalKey{}, p), req)
	}
}

// authStream authenticates and authorizes streaming calls. Messages of a
// non-admin account are checked as they arrive.
func (s *Server) authStream(secure bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		p, err := authenticate(ctx, secure)
		if err != nil {
			drainRequests(ss, info)
			return err
		}
		if p == nil && !anonymousAllowed(info.FullMethod) {
			drainRequests(ss, info)
			ss.SetTrailer(accessDeniedTrailer)
			return errAccessDenied
		}
		return handler(srv, &authedStream{ServerStream: ss, ctx: context.WithValue(ctx, principalKey{}, p), p: p, info: info})
	}
}

// authedStream carries the request's account and checks what a non-admin
// account sends.
type authedStream struct {
	grpc.ServerStream
	ctx  context.Context
	p    *principal
	info *grpc.StreamServerInfo
}

func (a *authedStream) Context() context.Context { return a.ctx }

func (a *authedStream) RecvMsg(m any) error {
	if err := a.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if a.p != nil && !a.p.admin && !userMayAccess(m) {
		// Read the rest of a client stream first, so the client sees the
		// denial rather than a failed send.
		drainRequests(a.ServerStream, a.info)
		a.ServerStream.SetTrailer(accessDeniedTrailer)
		return errAccessDenied
	}
	return nil
}

// userMayAccess applies KurrentDB's default access rules for an ordinary
// (non-admin) user: user streams are open, system streams ("$…") and $all
// need $admins.
func userMayAccess(req any) bool {
	switch r := req.(type) {
	case *streams.ReadReq:
		o := r.GetOptions()
		if o == nil {
			return true
		}
		if o.GetAll() != nil {
			return false
		}
		return !isSystemStream(o.GetStream().GetStreamIdentifier().GetStreamName())
	case *streams.AppendReq:
		return !isSystemStream(r.GetOptions().GetStreamIdentifier().GetStreamName())
	case *appendFrame: // Append decodes into this
		return r.kind != frameOptions || !isSystemStream(r.stream)
	case *streams.DeleteReq:
		return !isSystemStream(r.GetOptions().GetStreamIdentifier().GetStreamName())
	case *streams.TombstoneReq:
		return !isSystemStream(r.GetOptions().GetStreamIdentifier().GetStreamName())
	case *v2streams.AppendRequest:
		return !isSystemStream([]byte(r.GetStream()))
	}
	return true
}

// isSystemStream reports whether a stream name is reserved ("$…"). The
// metastream of a user stream ("$$orders") follows its stream's rules.
func isSystemStream(name []byte) bool {
	if len(name) > 2 && name[0] == '$' && name[1] == '$' {
		return isSystemStream(name[2:])
	}
	return len(name) > 0 && name[0] == '$'
}

// drainWait bounds how long a refused client-streaming call waits for the
// client to finish sending.
const drainWait = 2 * time.Second

// drainRequests reads what the client of a refused client-streaming call
// (Append, AppendSession) still sends, for at most drainWait. The official
// clients send the whole request before reading the reply; answering before
// they are done makes their next Send fail with io.EOF, which hides the real
// status behind an "unknown" error. Bidirectional calls are not drained: their
// clients read replies while sending.
func drainRequests(ss grpc.ServerStream, info *grpc.StreamServerInfo) {
	if !info.IsClientStream || info.IsServerStream {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := ss.RecvMsg(new(emptypb.Empty)); err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(drainWait):
	}
}
