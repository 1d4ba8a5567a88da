package emulator

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
)

// gossipServer reports a one-node cluster: this node, alive, as Leader.
type gossipServer struct {
	gossip.UnimplementedGossipServer
	instance uuid.UUID
	host     string
	port     uint32
}

func newGossipServer(host string, port uint32) *gossipServer {
	return &gossipServer{instance: uuid.New(), host: host, port: port}
}

// Read implements Gossip.
func (g *gossipServer) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId: gossipInstanceID(g.instance),
		TimeStamp:  time.Now().UnixNano() / 100,
		State:      gossip.MemberInfo_Leader,
		IsAlive:    true,
		HttpEndPoint: &gossip.EndPoint{
			Address: g.host,
			Port:    g.port,
		},
	}}}, nil
}

// gossipInstanceID encodes u in the structured form of shared.UUID.
func gossipInstanceID(u uuid.UUID) *shared.UUID {
	var msb, lsb int64
	for i := 0; i < 8; i++ {
		msb = msb<<8 | int64(u[i])
		lsb = lsb<<8 | int64(u[8+i])
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  msb,
		LeastSignificantBits: lsb,
	}}}
}
