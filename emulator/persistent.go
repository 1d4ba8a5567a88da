package emulator

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
)

// persistentServer is a minimal PersistentSubscriptions service: it records
// groups created with Create and rejects duplicates. It delivers no events.
type persistentServer struct {
	persistent.UnimplementedPersistentSubscriptionsServer
	mu     sync.Mutex
	groups map[[2]string]struct{} // {stream, group}
}

func newPersistentServer() *persistentServer {
	return &persistentServer{groups: map[[2]string]struct{}{}}
}

// Create implements PersistentSubscriptions.Create.
func (p *persistentServer) Create(ctx context.Context, req *persistent.CreateReq) (*persistent.CreateResp, error) {
	o := req.GetOptions()
	if o == nil {
		return nil, status.Error(codes.InvalidArgument, "CreateReq.options is required")
	}
	if o.GetGroupName() == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateReq.options.group_name is required")
	}
	var stream string
	switch {
	case o.GetStream() != nil:
		stream = string(o.GetStream().GetStreamIdentifier().GetStreamName())
	case o.GetAll() != nil:
		stream = "$all"
	default:
		// Older clients send only the legacy field.
		//lint:ignore SA1019 the deprecated field is still part of the protocol
		stream = string(o.GetStreamIdentifier().GetStreamName())
	}
	if stream == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateReq.options: a stream or $all is required")
	}
	key := [2]string{stream, o.GetGroupName()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.groups[key]; dup {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(
			"exception", "persistent-subscription-exists",
			"stream-name", trailerValue(stream),
			"group-name", trailerValue(o.GetGroupName())))
		return nil, status.Error(codes.AlreadyExists,
			fmt.Sprintf("Subscription group %s on stream %s exists.", o.GetGroupName(), stream))
	}
	p.groups[key] = struct{}{}
	return &persistent.CreateResp{}, nil
}
