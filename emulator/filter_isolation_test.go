package emulator

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
)

// catastrophicRegex backtracks exponentially on a run of a's that does not
// end the string.
const catastrophicRegex = `^(a+)+$`

// appendCraftedTypes appends n events whose types make catastrophicRegex
// backtrack, each type distinct so no memo helps.
func appendCraftedTypes(t *testing.T, s *Store, n int) {
	t.Helper()
	evs := make([]ProposedEvent, n)
	for i := range evs {
		evs[i] = ProposedEvent{ID: uuid.New(), Type: strings.Repeat("a", 30+i) + "!"}
	}
	if _, err := s.Append(StreamAppend{Stream: "crafted", Expected: expAny, Events: evs}); err != nil {
		t.Fatal(err)
	}
}

// regexFilter is an event-type regex filter for a raw $all request.
func regexFilter(regex string) *streams.ReadReq_Options_FilterOptions {
	return &streams.ReadReq_Options_FilterOptions{
		Filter: &streams.ReadReq_Options_FilterOptions_EventType{EventType: &streams.ReadReq_Options_FilterOptions_Expression{Regex: regex}},
		Window: &streams.ReadReq_Options_FilterOptions_Max{Max: 32}, CheckpointIntervalMultiplier: 1,
	}
}

// TestCatastrophicRegexSlowsOnlyItsSubscriber: a subscriber whose regex
// backtracks catastrophically over crafted event types is filtered outside
// the store lock, so appends by another client and other reads complete
// while its filter is being evaluated; the subscriber itself ends with
// ResourceExhausted naming its regex once the page's budget is spent (per
// page: with a budget per record, 20 crafted types would be skipped as
// non-matching after 20 budgets and no error would come).
func TestCatastrophicRegexSlowsOnlyItsSubscriber(t *testing.T) {
	f := newReadFixture(t, Options{FilterBudget: 300 * time.Millisecond})
	appendCraftedTypes(t, f.store, 20)

	entered, release := make(chan struct{}), make(chan struct{})
	// Released at the latest when the test ends (before the server closes),
	// so a failing run ends instead of hanging.
	releaseFilter := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseFilter)
	var once sync.Once
	f.store.hooks.Store(&storeHooks{beforeFilter: func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}})
	ctx := rdCtx(t)
	req := rdAllReq(0, regexFilter(catastrophicRegex))
	req.Options.CountOption = &streams.ReadReq_Options_Subscription{}
	slow := rdSubscribe(t, ctx, f, req)
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the subscriber never started filtering")
	}

	// The subscriber is inside its filter evaluation: appends and other
	// readers go on. Were the filter matched under the store lock, these
	// would block until the context ends.
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream := "bystander-" + uuid.NewString()
	for i := 0; i < 5; i++ {
		if _, err := f.client.AppendToStream(actx, stream, kurrentdb.AppendToStreamOptions{}, testEvents(1, "Normal")...); err != nil {
			t.Fatalf("append %d while a catastrophic filter is evaluated: %v", i, err)
		}
	}
	if evs, err := readToEnd(f.client.ReadStream(actx, stream, kurrentdb.ReadStreamOptions{}, 10)); err != nil || len(evs) != 5 {
		t.Fatalf("read while a catastrophic filter is evaluated: %d events, %v; want 5", len(evs), err)
	}
	releaseFilter()

	// Nothing before the crafted records matches, so the first message is
	// the end of the subscription.
	m := rawMsg(t, slow)
	if m.kind != "dropped" {
		t.Fatalf("slow subscriber got %v, want it ended", m)
	}
	if status.Code(m.err) != codes.ResourceExhausted || !strings.Contains(m.err.Error(), catastrophicRegex) {
		t.Fatalf("slow subscriber ended with %v, want ResourceExhausted naming %q", m.err, catastrophicRegex)
	}
}

// TestCatastrophicRegexEndsFiniteRead: a finite filtered $all read gets the
// same error, and a normal filter over the same records works.
func TestCatastrophicRegexEndsFiniteRead(t *testing.T) {
	f := newReadFixture(t, Options{FilterBudget: 200 * time.Millisecond})
	appendCraftedTypes(t, f.store, 3)
	stAppend(t, f.store, "plain", expAny, stEvent("Normal", `{}`))
	rc, err := f.raw.Read(rdCtx(t), rdAllReq(100, regexFilter(catastrophicRegex)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rc.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "event-type filter regex") {
		t.Fatalf("finite read with a catastrophic regex: %v, want ResourceExhausted naming the filter", err)
	}
	rc, err = f.raw.Read(rdCtx(t), rdAllReq(100, regexFilter(`^(Norm)+al$`)))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for {
		m, err := rc.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read with a normal regex: %v", err)
		}
		types = append(types, m.GetEvent().GetEvent().GetMetadata()["type"])
	}
	if len(types) != 1 || types[0] != "Normal" {
		t.Fatalf("read with a normal regex = %q, want the one Normal event", types)
	}
}
