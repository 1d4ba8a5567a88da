// A runnable example of a batch projection on the memory view.

package projection_test

import (
	"context"
	"fmt"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// A batch projection applies each batch at once: here it counts the tricks of each dog with
// one write per dog and batch, however many tricks the batch holds.
func ExampleNewBatch() {
	log := projectiontest.NewLog()
	log.Append("dog-1", "TrickAdded", []byte(`{"trick":"sit"}`))
	log.Append("dog-2", "TrickAdded", []byte(`{"trick":"roll over"}`))
	last := log.Append("dog-1", "TrickAdded", []byte(`{"trick":"play dead"}`))

	store := memory.New()
	tricks := projection.NewBatch("tricks", []string{"TrickAdded"}, func(_ context.Context, tx *memory.Tx, events []projection.Event) error {
		perDog := map[string]int64{}
		for _, e := range events {
			perDog[e.Stream]++
		}
		for dog, n := range perDog {
			tx.Add("tricks/"+dog, n)
		}
		return nil
	})
	runner := projection.NewRunner(log, store, projection.Options{})
	if err := runner.Add(tricks, projection.ProjectionOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if _, err := runner.Wait(ctx, "tricks", last.Position.Commit); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("dog-1:", store.Int("tricks/dog-1"), "dog-2:", store.Int("tricks/dog-2"))
	// Output:
	// dog-1: 2 dog-2: 1
}
