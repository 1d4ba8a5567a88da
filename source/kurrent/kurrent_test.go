package kurrent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
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

const (
	registered = "__main__:Dog.Registered"
	trick      = "__main__:Dog.TrickAdded"
	decoy      = "__main__:DogXRegistered" // matched by an unescaped "^A|B$" filter
)

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

type fixture struct {
	srv    *emulator.Server
	client *kurrentdb.Client
	src    *kurrent.Source
}

func newFixture(t *testing.T, opts kurrent.Options) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	client, err := kurrent.NewClient(srv.URI(), kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return &fixture{srv: srv, client: client, src: kurrent.New(client, opts)}
}

func (f *fixture) append(t *testing.T, stream, typ string, data string) tracking.Position {
	t.Helper()
	ev := kurrentdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: kurrentdb.ContentTypeBinary, Data: []byte(data)}
	r, err := f.client.AppendToStream(context.Background(), stream, kurrentdb.AppendToStreamOptions{}, ev)
	for try := 0; err != nil && try < 20; try++ {
		// The client answers Unavailable once after a server restart, then reconnects; the
		// event id makes the retry idempotent.
		time.Sleep(50 * time.Millisecond)
		r, err = f.client.AppendToStream(context.Background(), stream, kurrentdb.AppendToStreamOptions{}, ev)
	}
	if err != nil {
		t.Fatalf("append %s to %s: %v", typ, stream, err)
	}
	return tracking.Position{Commit: r.CommitPosition, Prepare: r.PreparePosition}
}

// drain reads sub until it has caught up, returning the events and the last checkpoint.
func drain(t *testing.T, sub projection.Subscription) (events []projection.Event, checkpoint uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (after %d events)", err, len(events))
		}
		switch m.Kind {
		case projection.EventMessage:
			events = append(events, m.Event)
		case projection.CheckpointMessage:
			if m.Checkpoint < checkpoint {
				t.Errorf("checkpoint went back from %d to %d", checkpoint, m.Checkpoint)
			}
			checkpoint = m.Checkpoint
		case projection.CaughtUpMessage:
			return events, checkpoint
		}
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

// The runner over the KurrentDB source survives a server restart and subscription drops.
func TestRunnerOverKurrentSurvivesRestartsAndDrops(t *testing.T) {
	f := newFixture(t, kurrent.Options{})
	restarts := &restartCounter{}
	r, store, stop := runCounter(t, f.src, restarts, 50*time.Millisecond)
	defer stop()
	wait := func(pos tracking.Position) { t.Helper(); waitProcessed(t, r, pos, 15*time.Second) }
	var last tracking.Position
	for range 10 {
		last = f.append(t, "s", registered, `{}`)
	}
	wait(last)
	if err := f.srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		last = f.append(t, "s", registered, `{}`)
	}
	wait(last)
	f.srv.DropSubscriptions(status.Error(codes.Unavailable, "test drop"))
	last = f.append(t, "s", registered, `{}`)
	f.append(t, "s", decoy, `{}`)
	wait(last)
	if got := store.Int("n"); got != 21 {
		t.Errorf("count = %d, want 21", got)
	}
	if restarts.n() < 2 {
		t.Errorf("subscription restarts = %d, want at least 2", restarts.n())
	}
}

// runCounter starts, over src, a runner with one projection, "count", that counts registered
// events into store; stop ends the runner.
func runCounter(t *testing.T, src projection.Source, obs projection.Observer, maxBackoff time.Duration) (r *projection.Runner[*memory.Tx], store *memory.Store, stop func()) {
	t.Helper()
	store = memory.New()
	p := projection.New[*memory.Tx]("count").
		On(registered, func(_ context.Context, tx *memory.Tx, _ projection.Event) error { tx.Add("n", 1); return nil })
	r = projection.NewRunner(src, store, projection.Options{Observer: obs, MinBackoff: 5 * time.Millisecond, MaxBackoff: maxBackoff, CheckpointEvery: 10 * time.Millisecond})
	if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return r, store, func() { cancel(); <-done }
}

// waitProcessed waits up to timeout until r's "count" projection has processed pos.
func waitProcessed(t *testing.T, r *projection.Runner[*memory.Tx], pos tracking.Position, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if s, err := r.Wait(ctx, "count", pos.Commit); err != nil {
		t.Fatalf("Wait(%v): %v (state %v, status %+v)", pos, err, s, r.Status())
	}
}

type restartCounter struct {
	projection.NopObserver
	mu    sync.Mutex
	count int
}

func (c *restartCounter) SubscriptionRestarted(projection.Fault) {
	c.mu.Lock()
	c.count++
	c.mu.Unlock()
}

func (c *restartCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
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

// Bad credentials and a denied account are permanent: the runner keeps retrying at its longest
// backoff and reports every attempt, naming the projection.
func TestBadCredentialsArePermanentAndReportedByTheRunner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{TLSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	for _, uri := range []string{
		"kurrentdb://admin:wrong@" + srv.TLSAddr() + "?tls=true&tlsverifycert=false",
		"kurrentdb://" + srv.TLSAddr() + "?tls=true&tlsverifycert=false", // anonymous: access denied
	} {
		client, err := kurrent.NewClient(uri, kurrent.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		src := kurrent.New(client, kurrent.Options{})
		if sub, err := src.Subscribe(ctx, []string{registered}, tracking.State{}); err == nil {
			_ = sub.Close()
			t.Errorf("%s: Subscribe succeeded", uri)
		} else if !errors.Is(err, projection.ErrPermanent) {
			t.Errorf("%s: Subscribe error %v, want it to wrap ErrPermanent", uri, err)
		}
		_ = client.Close()
	}

	client, err := kurrent.NewClient("kurrentdb://admin:wrong@"+srv.TLSAddr()+"?tls=true&tlsverifycert=false", kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rec := &permanentRecorder{reported: make(chan error, 16)}
	r := projection.NewRunner(kurrent.New(client, kurrent.Options{}), memory.New(), projection.Options{Observer: rec, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	p := projection.New[*memory.Tx]("dogs").On(registered, func(context.Context, *memory.Tx, projection.Event) error { return nil })
	if err := r.Add(p, projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { rcancel(); <-done }()
	for i := range 3 {
		select {
		case err := <-rec.reported:
			if !errors.Is(err, projection.ErrPermanent) || !strings.Contains(err.Error(), `projection "dogs"`) {
				t.Errorf("report %d = %v, want a permanent error naming the projection", i, err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of 3 attempts reported", i)
		}
	}
	if st := r.Status()[0]; st.State != projection.StateRetrying || !strings.Contains(st.Error, "Unauthenticated") {
		t.Errorf("status = %+v, want retrying with the authentication error", st)
	}
}

type permanentRecorder struct {
	projection.NopObserver
	reported chan error
}

func (r *permanentRecorder) Error(f projection.Fault) {
	if f.Kind != "source" {
		return
	}
	select {
	case r.reported <- f.Err:
	default:
	}
}

// A KurrentDB that is down for a while (stopped, then started again on its data) is one outage:
// the runner retries many times but reports it once, then resumes exactly. The Source replaces
// the client that gave up during the outage.
func TestServerDownThenBackIsReportedOnceAndResumesExactly(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	addr, uri := srv.Addr(), srv.URI()
	writer := func() *kurrentdb.Client {
		c, err := kurrent.NewClient(uri, kurrent.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	src, err := kurrent.Dial(uri, kurrent.ClientOptions{}, kurrent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f := &fixture{srv: srv, client: writer(), src: src}
	obs := &outageRecorder{}
	r, store, stop := runCounter(t, f.src, obs, 40*time.Millisecond)
	defer stop()
	waitFor := func(pos tracking.Position) { t.Helper(); waitProcessed(t, r, pos, 20*time.Second) }
	var last tracking.Position
	for range 10 {
		last = f.append(t, "s", registered, `{}`)
	}
	waitFor(last)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the runner retries without its server", func() bool { return r.Status()[0].State == projection.StateRetrying })
	// Longer than the client's discovery attempts (it then closes itself for good), and many
	// runner attempts at a 5-40ms backoff.
	time.Sleep(2500 * time.Millisecond)
	srv2, err := emulator.Start(ctx, emulator.Options{DataDir: dir, Listen: addr})
	if err != nil {
		t.Fatalf("emulator restart on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = srv2.Close() })
	f.srv, f.client = srv2, writer() // the writer's client closed itself during the outage
	for range 10 {
		last = f.append(t, "s", registered, `{}`)
	}
	waitFor(last)
	if got := store.Int("n"); got != 20 {
		t.Errorf("count = %d, want 20", got)
	}
	reports, retrying := obs.get()
	t.Logf("reports %d retrying %d", reports, retrying)
	if reports < 1 || reports > 2 || retrying != 1 {
		t.Errorf("one outage gave %d reports and %d changes to retrying; want 1 or 2 (the drop, then the failed subscribes) and 1", reports, retrying)
	}
}

type outageRecorder struct {
	projection.NopObserver
	mu                sync.Mutex
	reports, retrying int
}

func (o *outageRecorder) Error(projection.Fault) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reports++
}

func (o *outageRecorder) SubscriptionRestarted(projection.Fault) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reports++
}

func (o *outageRecorder) StateChanged(c projection.StateChange) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c.To == projection.StateRetrying {
		o.retrying++
	}
}

func (o *outageRecorder) get() (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reports, o.retrying
}
