package kurrent_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The emulator's regex engine keeps a clock goroutine, and the client leaves a gRPC
		// callback goroutine behind for each connection it replaces after Unavailable.
		goleak.IgnoreAnyFunction("github.com/dlclark/regexp2.runClock"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"))
}

func TestTopicFilterIsAnchoredGroupedAndQuoted(t *testing.T) {
	got, err := kurrent.TopicFilter([]string{trick, registered, trick})
	if err != nil {
		t.Fatal(err)
	}
	if want := `^(?:__main__:Dog\.Registered|__main__:Dog\.TrickAdded)$`; got != want {
		t.Fatalf("TopicFilter = %s, want %s", got, want)
	}
	// The server evaluates it with .NET semantics (an unanchored search).
	re := regexp2.MustCompile(got, regexp2.None)
	for s, want := range map[string]bool{
		registered: true, trick: true, decoy: false,
		"x" + registered: false, registered + "x": false, "__main__:Dog.Registered|": false,
	} {
		if ok, _ := re.MatchString(s); ok != want {
			t.Errorf("filter matches %q = %v, want %v", s, ok, want)
		}
	}
	if _, err := kurrent.TopicFilter(nil); err == nil {
		t.Error("TopicFilter(nil) succeeded")
	}
	if _, err := kurrent.TopicFilter([]string{"a", ""}); err == nil {
		t.Error("TopicFilter with an empty topic succeeded")
	}
}

func TestSubscribeDeliversExactlyTheTopicsInLogOrder(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	var want []tracking.Position
	for i := range 40 {
		stream := fmt.Sprint("dog-", i%4)
		want = append(want, f.append(t, stream, registered, fmt.Sprintf(`{"n":%d}`, i)))
		f.append(t, stream, decoy, `{}`)
		f.append(t, stream, "Other", `{}`)
	}
	sub, err := f.src.Subscribe(context.Background(), []string{registered, trick}, tracking.State{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	events, _ := drain(t, sub)
	if len(events) != 40 {
		t.Fatalf("got %d events, want 40", len(events))
	}
	for i, e := range events {
		if e.Type != registered || e.Position != want[i] || e.Stream != fmt.Sprint("dog-", i%4) || e.Revision != uint64(3*(i/4)) ||
			string(e.Data) != fmt.Sprintf(`{"n":%d}`, i) || e.ContentType != "application/octet-stream" || e.ID == "" || e.Created.IsZero() {
			t.Fatalf("event %d = %+v, want type %s at %v", i, e, registered, want[i])
		}
	}
	// A live event arrives after caught-up.
	p := f.append(t, "dog-9", trick, `{}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind == projection.EventMessage {
			if m.Event.Position != p || m.Event.Type != trick {
				t.Fatalf("live event = %+v, want %s at %v", m.Event, trick, p)
			}
			break
		}
	}
}

func TestResumeStrictlyAfterTheTrackedEvent(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	var ps []tracking.Position
	for range 5 {
		ps = append(ps, f.append(t, "s", registered, `{}`))
	}
	sub, err := f.src.Subscribe(context.Background(), []string{registered}, tracking.State{Last: ps[2]})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	events, _ := drain(t, sub)
	if len(events) != 2 || events[0].Position != ps[3] || events[1].Position != ps[4] {
		t.Fatalf("resumed events = %v, want the two after %v", events, ps[2])
	}
}

// KurrentDB #4970: the checkpoint at the end of a filtered catch-up is the position at which the
// next event will be written. A resume from that checkpoint must still deliver that event.
func TestResumeFromACheckpointDeliversTheEventWrittenAtIt(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	var last tracking.Position
	for i := range 50 {
		last = f.append(t, fmt.Sprint("d-", i), decoy, `{}`)
	}
	sub, err := f.src.Subscribe(context.Background(), []string{registered}, tracking.State{})
	if err != nil {
		t.Fatal(err)
	}
	events, cp := drain(t, sub)
	sub.Close()
	if len(events) != 0 {
		t.Fatalf("decoys delivered: %v", events)
	}
	if cp <= last.Commit {
		t.Fatalf("final checkpoint %d is not past the last decoy %v", cp, last)
	}
	at := f.append(t, "dog", registered, `{}`)
	if at.Commit != cp {
		t.Fatalf("the emulator wrote the next event at %v, not at the checkpoint %d: this test needs the #4970 case", at, cp)
	}
	for _, from := range []tracking.State{{Checkpoint: cp}, {Last: last, Checkpoint: cp}} {
		sub, err := f.src.Subscribe(context.Background(), []string{registered}, from)
		if err != nil {
			t.Fatal(err)
		}
		events, _ := drain(t, sub)
		sub.Close()
		if len(events) != 1 || events[0].Position != at {
			t.Errorf("resume from %v delivered %v, want the event at %v", from, events, at)
		}
	}
}

func TestHeadReportsTheLastEventOfAll(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	f.append(t, "a", registered, `{}`)
	want := f.append(t, "b", decoy, `{}`)
	got, created, err := f.src.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != want || time.Since(created) > time.Minute {
		t.Errorf("Head = %v at %v, want %v just now", got, created, want)
	}
}

func TestDroppedSubscriptionEndsNextWithAnError(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	f.append(t, "a", registered, `{}`)
	sub, err := f.src.Subscribe(context.Background(), []string{registered}, tracking.State{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	drain(t, sub)
	f.srv.DropSubscriptions(status.Error(codes.Unavailable, "test drop"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("the dropped subscription did not report an error")
			}
			break
		}
		if m.Kind == projection.EventMessage {
			t.Fatalf("unexpected event %+v", m.Event)
		}
	}
}

func TestClassifySeparatesPermanentFromTransientErrors(t *testing.T) {
	for code, permanent := range map[codes.Code]bool{
		codes.Unauthenticated: true, codes.PermissionDenied: true, codes.InvalidArgument: true, codes.Unimplemented: true,
		codes.Unavailable: false, codes.DeadlineExceeded: false, codes.Aborted: false, codes.Internal: false, codes.Canceled: false,
	} {
		err := kurrent.Classify(fmt.Errorf("subscribe: %w", status.Error(code, "x")))
		if got := errors.Is(err, projection.ErrPermanent); got != permanent {
			t.Errorf("Classify(%v) permanent = %v, want %v", code, got, permanent)
		}
	}
	if kurrent.Classify(nil) != nil || errors.Is(kurrent.Classify(errors.New("connection reset")), projection.ErrPermanent) {
		t.Error("Classify of nil or of a plain error is not as given")
	}
}
