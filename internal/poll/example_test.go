package poll_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/internal/poll"
)

// Wait returns as soon as the check passes; in a test, poll.Until and poll.UntilNil fail the
// test instead of returning an error.
func ExampleWait() {
	calls := 0
	err := poll.Wait(5*time.Second, func() error {
		calls++
		if calls < 3 {
			return errors.New("not ready")
		}
		return nil
	})
	fmt.Println(err, calls)

	err = poll.Wait(10*time.Millisecond, func() error { return errors.New("port 5432 refuses connections") })
	fmt.Println(err)
	// Output:
	// <nil> 3
	// not within 10ms: port 5432 refuses connections
}
