package emulator_test

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/emulator"
)

// A Store is the emulator's log: appends check the expected revision, and
// every event gets the next revision of its stream and a position in $all.
func ExampleOpenStore() {
	s, err := emulator.OpenStore(emulator.StoreOptions{Logger: zap.NewNop()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	placed := emulator.ProposedEvent{ID: uuid.New(), Type: "OrderPlaced", IsJSON: true, Data: []byte(`{"total":"44.98"}`)}
	res, err := s.Append(emulator.StreamAppend{
		Stream:   "order-1",
		Expected: emulator.Expected{Kind: emulator.ExpectNoStream},
		Events:   []emulator.ProposedEvent{placed},
	})
	fmt.Println(res.Revision, res.Position > 0, err)

	// Appending the same event again is an idempotent replay.
	again, _ := s.Append(emulator.StreamAppend{Stream: "order-1", Expected: emulator.Expected{Kind: emulator.ExpectNoStream},
		Events: []emulator.ProposedEvent{placed}})
	fmt.Println(again == res)

	// A stale expected revision fails.
	_, err = s.Append(emulator.StreamAppend{
		Stream:   "order-1",
		Expected: emulator.Expected{Kind: emulator.ExpectRevision, Revision: 5},
		Events:   []emulator.ProposedEvent{{ID: uuid.New(), Type: "OrderShipped"}},
	})
	var wev *emulator.WrongExpectedVersionError
	fmt.Println(errors.As(err, &wev), wev.Actual)
	// Output:
	// 0 true <nil>
	// true
	// true 0
}
