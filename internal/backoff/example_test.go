package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/projector-dev/projector/internal/backoff"
)

// A retry loop: wait b.Next() after each failure, until the attempt succeeds or ctx ends.
func Example() {
	ctx := context.Background()
	attempts := 0
	connect := func(context.Context) error {
		attempts++
		if attempts < 4 {
			return errors.New("connection refused")
		}
		return nil
	}

	b := backoff.New(time.Millisecond, 4*time.Millisecond)
	for {
		err := connect(ctx)
		if err == nil {
			b.Reset() // the next fault starts again from the shortest wait
			break
		}
		fmt.Printf("attempt %d: %v; retrying\n", attempts, err)
		t := time.NewTimer(b.Next()) // 0.5-1ms, then 1-2ms, then 2-4ms, and 2-4ms from then on
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	fmt.Printf("connected after %d attempts\n", attempts)
	// Output:
	// attempt 1: connection refused; retrying
	// attempt 2: connection refused; retrying
	// attempt 3: connection refused; retrying
	// connected after 4 attempts
}
