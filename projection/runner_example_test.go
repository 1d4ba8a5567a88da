// A runnable example of a Runner: a poison event stops a projection; Skip restarts it past it.

package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/projection/projectiontest"
	"github.com/projector-dev/projector/views/memory"
)

// A projection under the default stop policy halts on an event its handler cannot apply; Skip
// dead-letters that event and lets it go on, without a restart.
func ExampleRunner_Skip() {
	log := projectiontest.NewLog()
	log.Append("dog-1", "Registered", []byte(`{"name":"Fido"}`))
	log.Append("dog-2", "Registered", []byte(`not json`))
	last := log.Append("dog-3", "Registered", []byte(`{"name":"Rex"}`))

	store := memory.New()
	dogs := projection.New[*memory.Tx]("dogs").On("Registered", func(_ context.Context, tx *memory.Tx, e projection.Event) error {
		var d struct{ Name string }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		tx.Add("dogs", 1)
		return nil
	})
	runner := projection.NewRunner(log, store, projection.Options{})
	if err := runner.Add(dogs, projection.ProjectionOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }() // cancel ctx to drain and stop, as on SIGTERM
	defer func() { cancel(); <-done }()

	for runner.Status()[0].State != projection.StateStopped {
		time.Sleep(time.Millisecond)
	}
	st := runner.Status()[0]
	fmt.Println(st.State, "on", st.Failed.Stream, "revision", st.Failed.Revision, "after", store.Int("dogs"), "dog")

	if err := runner.Skip("dogs"); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := runner.Wait(ctx, "dogs", last.Position.Commit); err != nil {
		fmt.Println(err)
		return
	}
	dl := store.DeadLetters()
	fmt.Println(store.Int("dogs"), "dogs,", len(dl), "dead letter:", dl[0].Event.Stream, dl[0].Error)
	// Output:
	// stopped on dog-2 revision 0 after 1 dog
	// 2 dogs, 1 dead letter: dog-2 invalid character 'o' in literal null (expecting 'u')
}
