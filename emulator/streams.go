package emulator

import (
	"go.uber.org/zap"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// streamsServer implements the v1 Streams service (event_store.client.streams)
// on one store. Read lives in read.go; the write RPCs in append.go,
// batchappend.go and delete.go.
type streamsServer struct {
	streams.UnimplementedStreamsServer
	store  *Store
	log    *zap.Logger
	limits appendLimits
}
