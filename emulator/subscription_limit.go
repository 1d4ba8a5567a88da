package emulator

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxSubscriptions is the number of subscriptions (to a stream or to
// $all) a store serves at once when StoreOptions.MaxSubscriptions (or
// Options.MaxSubscriptions) is zero. Each one holds a goroutine and a page
// buffer; the cap keeps a runaway client from exhausting the process.
const DefaultMaxSubscriptions = 1000

// acquireSubscription takes a subscription slot, or fails with
// ResourceExhausted when every slot is taken. releaseSubscription frees it.
func (s *Store) acquireSubscription() error {
	limit := int64(s.opts.MaxSubscriptions)
	if limit <= 0 {
		limit = DefaultMaxSubscriptions
	}
	for {
		n := s.subs.Load()
		if n >= limit {
			return status.Errorf(codes.ResourceExhausted,
				"the emulator serves at most %d subscriptions at once (its subscription limit) and all are in use; end one and subscribe again", limit)
		}
		if s.subs.CompareAndSwap(n, n+1) {
			return nil
		}
	}
}

// releaseSubscription frees a slot taken by acquireSubscription.
func (s *Store) releaseSubscription() { s.subs.Add(-1) }
