package emulator

import (
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// sender encodes and sends ReadResp messages. Events are encoded by hand
// (see read_encode.go) into a buffer of their exact size. Nothing passed to
// SendMsg is touched afterwards: gRPC's codec keeps a small message's bytes
// (without copying them) until the transport has written them out, after
// SendMsg returns, and tracing or a stats handler may keep the message
// itself. So each event gets its own buffer and its own encodedResp.
type sender struct {
	srv       readSink
	now       func() time.Time
	stringIDs bool
}

// Reads send the three system metadata keys a real server sends.
const (
	mdType        = "type"
	mdCreated     = "created"
	mdContentType = "content-type"
	contentJSON   = "application/json"
	contentBinary = "application/octet-stream"
)

func newSender(srv readSink, stringIDs bool, now func() time.Time) *sender {
	return &sender{srv: srv, stringIDs: stringIDs, now: now}
}

// event sends one event (with its link, if resolved).
func (snd *sender) event(it pageItem) error {
	n := eventRespSize(it, snd.stringIDs)
	b := appendEventResp(make([]byte, 0, n), it, snd.stringIDs)
	if len(b) != n {
		// A size that disagrees with the bytes would make the client fail
		// with "cannot parse invalid wire-format data"; never send it.
		return status.Errorf(codes.Internal, "encoding event at position %d: %d bytes, size says %d", it.orig().pos, len(b), n)
	}
	return snd.srv.SendMsg(&encodedResp{b: b})
}

// events sends the events of page in order.
func (snd *sender) events(page []pageItem) error {
	for _, it := range page {
		if err := snd.event(it); err != nil {
			return err
		}
	}
	return nil
}

func (snd *sender) streamNotFound(name string) error {
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_StreamNotFound_{
		StreamNotFound: &streams.ReadResp_StreamNotFound{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)}},
	}})
}

func (snd *sender) confirmation(id string) error {
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Confirmation{
		Confirmation: &streams.ReadResp_SubscriptionConfirmation{SubscriptionId: id},
	}})
}

func (snd *sender) timestamp() *timestamppb.Timestamp {
	return timestamppb.New(snd.now())
}

func (snd *sender) checkpoint(pos uint64) error {
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Checkpoint_{
		Checkpoint: &streams.ReadResp_Checkpoint{CommitPosition: pos, PreparePosition: pos, Timestamp: snd.timestamp()},
	}})
}

// caughtUpRevision sends caught_up for a stream subscription; rev < 0 omits
// the revision.
func (snd *sender) caughtUpRevision(rev int64) error {
	cu := &streams.ReadResp_CaughtUp{Timestamp: snd.timestamp()}
	if rev >= 0 {
		cu.StreamRevision = &rev
	}
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: cu}})
}

// caughtUpPosition sends caught_up for a $all subscription; has false omits
// the position.
func (snd *sender) caughtUpPosition(pos uint64, has bool) error {
	cu := &streams.ReadResp_CaughtUp{Timestamp: snd.timestamp()}
	if has {
		cu.Position = &streams.ReadResp_Position{CommitPosition: pos, PreparePosition: pos}
	}
	return snd.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: cu}})
}
