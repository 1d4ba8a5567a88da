package emulator

import (
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
// search, lookarounds allowed).
type eventFilter struct {
	byStream bool
	prefixes []string
	re       *regexp2.Regexp
	// cache memoizes regex results per type or stream name; it belongs to
	// one reader (filters are not shared between goroutines).
	cache map[string]bool
}

// maxFilterCache bounds a filter's memo of regex results.
const maxFilterCache = 4096

// regexTimeout bounds one regex match, so a pathological pattern cannot
// stall a reader forever.
const regexTimeout = 2 * time.Second

// newEventFilter compiles a filter. An invalid regex is an error naming it.
func newEventFilter(byStream bool, regex string, prefixes []string) (*eventFilter, error) {
	f := &eventFilter{byStream: byStream}
	if regex != "" {
		re, err := regexp2.Compile(regex, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("invalid filter regex %q: %w", regex, err)
		}
		re.MatchTimeout = regexTimeout
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

// match applies the filter to a record (without the default $all filter).
func (f *eventFilter) match(r *record) bool {
	s := r.typ
	if f.byStream {
		s = r.stream.name
	}
	return f.matchString(s)
}

func (f *eventFilter) matchString(s string) bool {
	if f.re == nil {
		for _, p := range f.prefixes {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	}
	if m, ok := f.cache[s]; ok {
		return m
	}
	m, err := f.re.MatchString(s)
	if err != nil {
		m = false // a timed-out match does not match
	}
	if len(f.cache) < maxFilterCache {
		f.cache[s] = m
	}
	return m
}
