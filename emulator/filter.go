package emulator

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// defaultAllFilter is the filter every $all read and subscription applies
// (EventFilter.DefaultAllFilter of a real server): it hides epoch records and
// the checkpoint and parked streams of persistent subscriptions to $all, and
// allows everything else, including other system streams, metastreams and
// tombstones. typ may be "" to test the stream name alone.
func defaultAllFilter(stream, typ string) bool {
	if !strings.HasPrefix(stream, "$") {
		return true
	}
	if stream == epochInformation || typ == epochInformation {
		return false
	}
	if strings.HasPrefix(stream, "$persistentsubscription-$all::") &&
		(strings.HasSuffix(stream, "-checkpoint") || strings.HasSuffix(stream, "-parked")) {
		return false
	}
	return true
}

// visibleInAll says a record appears in $all reads and subscriptions.
func visibleInAll(r *record) bool {
	return !r.stream.hiddenFromAll && r.typ != epochInformation
}

// eventFilter is a server-side filter of $all on event type or stream name,
// by prefixes or by a regular expression with .NET semantics (an unanchored
// search, lookarounds allowed). A filter belongs to one reader: it is
// matched outside the store lock, by the reader's goroutine only.
type eventFilter struct {
	byStream bool
	prefixes []string
	re       *regexp2.Regexp
	// cache memoizes regex results per type or stream name.
	cache map[string]bool
	// budget is the time the filter may spend on one page of records; 0
	// means DefaultFilterBudget.
	budget time.Duration
}

// maxFilterCache bounds a filter's memo of regex results.
const maxFilterCache = 4096

// newEventFilter compiles a filter. An invalid regex is an error naming it.
func newEventFilter(byStream bool, regex string, prefixes []string) (*eventFilter, error) {
	f := &eventFilter{byStream: byStream}
	if regex != "" {
		re, err := regexp2.Compile(regex, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("invalid filter regex %q: %w", regex, err)
		}
		f.re = re
		f.cache = make(map[string]bool)
		return f, nil
	}
	if len(prefixes) == 0 {
		return nil, fmt.Errorf("a filter needs a regex or at least one prefix")
	}
	f.prefixes = prefixes
	return f, nil
}

// errFilterBudget says a match did not finish before the page's deadline.
var errFilterBudget = errors.New("filter budget exhausted")

// match applies the filter to a record (without the default $all filter).
// It fails with errFilterBudget once deadline has passed.
func (f *eventFilter) match(r *record, deadline time.Time) (bool, error) {
	s := r.typ
	if f.byStream {
		s = r.stream.name
	}
	return f.matchString(s, deadline)
}

func (f *eventFilter) matchString(s string, deadline time.Time) (bool, error) {
	left := time.Until(deadline)
	if left <= 0 {
		return false, errFilterBudget
	}
	if f.re == nil {
		for _, p := range f.prefixes {
			if strings.HasPrefix(s, p) {
				return true, nil
			}
		}
		return false, nil
	}
	if m, ok := f.cache[s]; ok {
		return m, nil
	}
	// The timeout of one match is what is left of the page's budget. The
	// filter is used by one goroutine, so setting it here is safe.
	f.re.MatchTimeout = left
	m, err := f.re.MatchString(s)
	if err != nil {
		return false, errFilterBudget // regexp2's only match error is its timeout
	}
	if len(f.cache) < maxFilterCache {
		f.cache[s] = m
	}
	return m, nil
}

// describe names the filter in errors: its kind and its regex or prefixes.
func (f *eventFilter) describe() string {
	kind := "event-type"
	if f.byStream {
		kind = "stream-name"
	}
	if f.re != nil {
		return fmt.Sprintf("%s filter regex %q", kind, f.re.String())
	}
	return fmt.Sprintf("%s filter prefixes %q", kind, f.prefixes)
}
