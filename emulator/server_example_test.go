package emulator_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/projector-dev/projector/emulator"
)

// Start an in-process emulator on a free loopback port, append with the
// official client and read the event back.
func ExampleStart() {
	ctx := context.Background()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	conf, err := kurrentdb.ParseConnectionString(srv.URI())
	if err != nil {
		log.Fatal(err)
	}
	client, err := kurrentdb.NewClient(conf)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.AppendToStream(ctx, "dog-1", kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}},
		kurrentdb.EventData{EventType: "DogRegistered", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{"name":"Fido"}`)})
	if err != nil {
		log.Fatal(err)
	}
	stream, err := client.ReadStream(ctx, "dog-1", kurrentdb.ReadStreamOptions{}, 10)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	ev, err := stream.Recv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Event.EventType, ev.Event.EventNumber, string(ev.Event.Data))
	// Output: DogRegistered 0 {"name":"Fido"}
}
