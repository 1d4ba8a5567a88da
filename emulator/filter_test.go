package emulator

import (
	"strings"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

func TestDefaultAllFilter(t *testing.T) {
	cases := []struct {
		stream, typ string
		want        bool
	}{
		{"order-1", "OrderPlaced", true},
		{"order-1", "$epoch-information", true}, // only system streams are filtered
		{"$epoch-information", "$epoch-information", false},
		{"$system", "$epoch-information", false},
		{"$persistentsubscription-$all::group-checkpoint", "$SubscriptionCheckpoint", false},
		{"$persistentsubscription-$all::group-parked", "x", false},
		{"$persistentsubscription-orders::group-parked", "x", true},
		{"$$order-1", "$metadata", true},
		{"$users", "$User", true},
	}
	for _, c := range cases {
		if got := defaultAllFilter(c.stream, c.typ); got != c.want {
			t.Errorf("defaultAllFilter(%q, %q) = %v, want %v", c.stream, c.typ, got, c.want)
		}
	}
}

// matches applies f to s with a generous deadline.
func matches(t *testing.T, f *eventFilter, s string) bool {
	t.Helper()
	m, err := f.matchString(s, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("match %q: %v", s, err)
	}
	return m
}

func TestEventFilterDotNetRegexSemantics(t *testing.T) {
	cases := []struct {
		regex string
		in    string
		want  bool
	}{
		// The Python client's exclusion filter: a negative lookahead.
		{`^(?!(\$.+$|PersistentConfig\d+$|Result$|.*Snapshot$))`, "OrderPlaced", true},
		{`^(?!(\$.+$|PersistentConfig\d+$|Result$|.*Snapshot$))`, "$metadata", false},
		{`^(?!(\$.+$|PersistentConfig\d+$|Result$|.*Snapshot$))`, "OrderSnapshot", false},
		{`^(?!(\$.+$|PersistentConfig\d+$|Result$|.*Snapshot$))`, "PersistentConfig12", false},
		{`^(?!(\$.+$|PersistentConfig\d+$|Result$|.*Snapshot$))`, "ResultX", true},
		// Regex.Match is a search, not a full match.
		{`Placed`, "OrderPlaced", true},
		{`^Placed`, "OrderPlaced", false},
		// The Go client's ExcludeSystemEventsFilter.
		{`^[^\$].*`, "$UserCreated", false},
		{`^[^\$].*`, "UserCreated", true},
		// Backreferences, which RE2 lacks.
		{`^(\w)\1`, "aab", true},
		{`^(\w)\1`, "abb", false},
	}
	for _, c := range cases {
		f, err := newEventFilter(false, c.regex, nil)
		if err != nil {
			t.Fatalf("compile %q: %v", c.regex, err)
		}
		for i := 0; i < 2; i++ { // the second time from the memo
			if got := matches(t, f, c.in); got != c.want {
				t.Errorf("%q on %q = %v, want %v", c.regex, c.in, got, c.want)
			}
		}
	}
}

func TestEventFilterPrefixesAndErrors(t *testing.T) {
	f, err := newEventFilter(true, "", []string{"order-", "cust"})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]bool{"order-1": true, "customer-2": true, "orders": false, "$order-": false} {
		if got := matches(t, f, in); got != want {
			t.Errorf("prefix filter on %q = %v, want %v", in, got, want)
		}
	}
	if _, err := newEventFilter(false, `(?<name`, nil); err == nil || !strings.Contains(err.Error(), `(?<name`) {
		t.Fatalf("invalid regex: %v, want an error naming the regex", err)
	}
	if _, err := newEventFilter(false, "", nil); err == nil {
		t.Fatal("a filter without regex or prefixes was accepted")
	}
}

func TestEventFilterMemoIsBounded(t *testing.T) {
	f, err := newEventFilter(true, `^s-`, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxFilterCache+100; i++ {
		matches(t, f, "s-"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+strings.Repeat("y", i/50))
	}
	if len(f.cache) > maxFilterCache {
		t.Fatalf("memo holds %d entries, bound is %d", len(f.cache), maxFilterCache)
	}
}

func TestFilterWindowAndCheckpointInterval(t *testing.T) {
	expr := &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{Prefix: []string{"x"}}}
	cases := []struct {
		window     string // "count", "max" or "none"
		max        uint32
		multiplier uint32
		wantWindow uint32
		wantEvery  uint64
	}{
		{"count", 0, 1, 32, 32},
		{"count", 0, 3, 32, 96},
		{"max", 10, 2, 10, 20},
		{"none", 0, 1, 32, 32},
	}
	for _, c := range cases {
		fo := &streams.ReadReq_Options_FilterOptions{Filter: expr, CheckpointIntervalMultiplier: c.multiplier}
		switch c.window {
		case "count":
			fo.Window = &streams.ReadReq_Options_FilterOptions_Count{}
		case "max":
			fo.Window = &streams.ReadReq_Options_FilterOptions_Max{Max: c.max}
		}
		var ro readOptions
		if err := ro.parseFilter(fo, true); err != nil {
			t.Fatal(err)
		}
		if ro.window != c.wantWindow || ro.interval != c.wantEvery {
			t.Errorf("window %s %d × %d: window %d interval %d, want %d and %d",
				c.window, c.max, c.multiplier, ro.window, ro.interval, c.wantWindow, c.wantEvery)
		}
	}
}
