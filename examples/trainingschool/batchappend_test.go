package trainingschool_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// batchAppend appends events to stream through Streams.BatchAppend, the only append path of the
// Python client (kurrentdbclient): string UUIDs, type and content type in the metadata map, no
// custom metadata.
func batchAppend(t *testing.T, conn *grpc.ClientConn, stream string, revision *uint64, topics []string, data []map[string]any) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := streams.NewStreamsClient(conn).BatchAppend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts := &streams.BatchAppendReq_Options{
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
		DeadlineOption:   &streams.BatchAppendReq_Options_Deadline{Deadline: durationpb.New(5 * time.Second)},
	}
	if revision == nil {
		opts.ExpectedStreamPosition = &streams.BatchAppendReq_Options_NoStream{NoStream: &emptypb.Empty{}}
	} else {
		opts.ExpectedStreamPosition = &streams.BatchAppendReq_Options_StreamPosition{StreamPosition: *revision}
	}
	req := &streams.BatchAppendReq{
		CorrelationId: &shared.UUID{Value: &shared.UUID_String_{String_: uuid.NewString()}},
		Options:       opts,
		IsFinal:       true,
	}
	for i, d := range data {
		b, _ := json.Marshal(d)
		req.ProposedMessages = append(req.ProposedMessages, &streams.BatchAppendReq_ProposedMessage{
			Id:       &shared.UUID{Value: &shared.UUID_String_{String_: uuid.NewString()}},
			Metadata: map[string]string{"type": topics[i], "content-type": "application/octet-stream"},
			Data:     b,
		})
	}
	if err := call.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = call.CloseSend()
	if resp.GetSuccess() == nil || resp.GetSuccess().GetPosition() == nil {
		t.Fatalf("BatchAppend to %s: %v", stream, resp)
	}
	return resp.GetSuccess().GetPosition().GetCommitPosition()
}

func TestEventsAppendedThroughBatchAppendAreProjected(t *testing.T) {
	e := newEnv(t)
	conn, err := grpc.NewClient(e.srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ts := map[string]string{"_type_": "datetime_iso", "_data_": "2026-11-27T08:00:00.000000+00:00"}
	fido := trainingschool.DogID("Fido").String()
	batchAppend(t, conn, fido, nil,
		[]string{trainingschool.TopicDogRegistered, trainingschool.TopicTrickAdded},
		[]map[string]any{{"timestamp": ts, "originator_topic": "__main__:Dog", "name": "Fido"}, {"timestamp": ts, "trick": "roll over"}})
	rev := uint64(1)
	last := batchAppend(t, conn, fido, &rev, []string{trainingschool.TopicTrickAdded}, []map[string]any{{"timestamp": ts, "trick": "play dead"}})

	view := memory.New()
	r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), view, projection.Options{})
	if err := r.Add(trainingschool.MemoryCounts(), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, r, last)
	name, _ := view.Get("dog/" + fido)
	if view.Int("dogs") != 1 || view.Int("tricks") != 2 || name != "Fido" {
		t.Errorf("view: %d dogs (%v), %d tricks; want Fido and 2 tricks", view.Int("dogs"), name, view.Int("tricks"))
	}
}
