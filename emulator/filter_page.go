package emulator

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultFilterBudget is the time a server-side filter may spend matching one
// page of records (at most maxScanPerPage of them) when Options.FilterBudget
// is zero. Ordinary filters need microseconds per page; the budget stops a
// pathological regex (catastrophic backtracking) and ends that read or
// subscription alone with ResourceExhausted. Filters are matched outside the
// store lock, so such a regex never delays appends or other readers.
const DefaultFilterBudget = 2 * time.Second

// storeHooks are test hooks of a Store; nil fields do nothing.
type storeHooks struct {
	// underReadLock runs in every read path while it holds the read lock.
	underReadLock func()
	// beforeFilter runs when a page of copied records is about to be
	// filtered, after the read lock was released.
	beforeFilter func()
}

// runUnderReadLock runs the underReadLock hook, if set. Callers hold mu.
func (s *Store) runUnderReadLock() {
	if h := s.hooks.Load(); h != nil && h.underReadLock != nil {
		h.underReadLock()
	}
}

// filterPage matches the items of cands, copied under the read lock, against
// f after the lock is released. It appends the matching items to page (and,
// with keepSkipped, every other item marked skip) and stops after max
// matches. It returns the page and how many candidates it considered: all
// of them, or up to and including the match that reached max. Items already
// marked skip are not matched. When the page's matching outlasts the
// filter's budget it fails with ResourceExhausted naming the filter.
func (s *Store) filterPage(f *eventFilter, page, cands []pageItem, max int, keepSkipped bool) ([]pageItem, int, error) {
	if h := s.hooks.Load(); h != nil && h.beforeFilter != nil {
		h.beforeFilter()
	}
	budget := f.budget
	if budget <= 0 {
		budget = DefaultFilterBudget
	}
	deadline := time.Now().Add(budget)
	matches := 0
	for i, it := range cands {
		if it.skip {
			if keepSkipped {
				page = append(page, it)
			}
			continue
		}
		m, err := f.match(it.orig(), deadline)
		if err != nil {
			return page, i, rpcFilterBudgetExhausted(f, budget, len(cands))
		}
		switch {
		case m:
			page = append(page, it)
			matches++
			if matches >= max {
				return page, i + 1, nil
			}
		case keepSkipped:
			it.skip = true
			page = append(page, it)
		}
	}
	return page, len(cands), nil
}

// rpcFilterBudgetExhausted is the error that ends a read or subscription
// whose filter took longer than its budget on one page of records.
func rpcFilterBudgetExhausted(f *eventFilter, budget time.Duration, records int) error {
	return status.Errorf(codes.ResourceExhausted,
		"%s did not finish matching a page of %d records within its %s budget (the emulator's filter budget); simplify the filter",
		f.describe(), records, budget)
}
