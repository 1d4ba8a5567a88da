package trainingschool_test

import (
	"context"
	"fmt"
	"time"

	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/memory"
)

// The seed's example: dogs and tricks are written to KurrentDB (here the project's emulator) as
// the Python package writes them, a projection counts them into an in-memory view, and the
// application waits for its own writes to be projected before it reads the view.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client, err := kurrent.NewClient(srv.URI(), kurrent.ClientOptions{})
	if err != nil {
		panic(err)
	}
	defer client.Close()

	school := trainingschool.NewSchool(client)
	for _, name := range []string{"Fido", "Milly"} {
		if _, err := school.Register(ctx, name); err != nil {
			panic(err)
		}
	}
	if _, err := school.AddTrick(ctx, "Fido", "roll over"); err != nil {
		panic(err)
	}
	last, err := school.AddTrick(ctx, "Fido", "play dead")
	if err != nil {
		panic(err)
	}

	view := memory.New()
	runner := projection.NewRunner(kurrent.New(client, kurrent.Options{}), view, projection.Options{})
	if err := runner.Add(trainingschool.MemoryCounts(), projection.ProjectionOptions{}); err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// Wait for the existing events to be processed.
	if _, err := runner.Wait(ctx, trainingschool.ProjectionName, last); err != nil {
		panic(err)
	}
	fmt.Println("dogs:", view.Int("dogs"), "tricks:", view.Int("tricks"))

	// Record another event in the write model, wait for it, read the view.
	pos, err := school.AddTrick(ctx, "Fido", "sit and stay")
	if err != nil {
		panic(err)
	}
	if _, err := runner.Wait(ctx, trainingschool.ProjectionName, pos); err != nil {
		panic(err)
	}
	fmt.Println("dogs:", view.Int("dogs"), "tricks:", view.Int("tricks"))
	name, _ := view.Get("dog/" + trainingschool.DogID("Milly").String())
	fmt.Println("registered:", name)
	// Output:
	// dogs: 2 tricks: 2
	// dogs: 2 tricks: 3
	// registered: Milly
}
