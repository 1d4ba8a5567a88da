package kurrent_test

// Tests of a projection.Runner over the source: server restarts and dropped subscriptions,
// bad credentials, and an outage reported once and resumed exactly.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/fanout"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// reads are the two ways the daemon reads the source: each projection on its own subscription,
// or the projections sharing one read (source/fanout, the daemon's default).
var reads = []struct {
	name string
	wrap func(projection.Source) projection.Source
}{
	{"own", func(s projection.Source) projection.Source { return s }},
	{"shared", func(s projection.Source) projection.Source {
		return fanout.New(s, fanout.Options{Topics: []string{registered, trick}})
	}},
}

// The runner over the KurrentDB source survives a server restart and subscription drops.
func TestRunnerOverKurrentSurvivesRestartsAndDrops(t *testing.T) {
	for _, read := range reads {
		t.Run(read.name, func(t *testing.T) { testRunnerSurvivesRestartsAndDrops(t, read.wrap) })
	}
}

func testRunnerSurvivesRestartsAndDrops(t *testing.T, wrap func(projection.Source) projection.Source) {
	f := newFixture(t, kurrent.Options{})
	restarts := &restartCounter{}
	r, store, stop := runCounter(t, wrap(f.src), restarts, 50*time.Millisecond)
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

	for _, read := range reads {
		t.Run(read.name, func(t *testing.T) { testRunnerReportsBadCredentials(ctx, t, srv, read.wrap) })
	}
}

func testRunnerReportsBadCredentials(ctx context.Context, t *testing.T, srv *emulator.Server, wrap func(projection.Source) projection.Source) {
	client, err := kurrent.NewClient("kurrentdb://admin:wrong@"+srv.TLSAddr()+"?tls=true&tlsverifycert=false", kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rec := &permanentRecorder{reported: make(chan error, 16)}
	r := projection.NewRunner(wrap(kurrent.New(client, kurrent.Options{})), memory.New(), projection.Options{Observer: rec, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
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
	for _, read := range reads {
		t.Run(read.name, func(t *testing.T) { testServerDownThenBack(t, read.wrap) })
	}
}

func testServerDownThenBack(t *testing.T, wrap func(projection.Source) projection.Source) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A port outside the ephemeral range, so none of the runner's connection attempts while the
	// server is down can take it as its own.
	srv, err := emulator.Start(ctx, emulator.Options{DataDir: dir, Listen: testbin.FreeAddr(t)})
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
	r, store, stop := runCounter(t, wrap(f.src), obs, 40*time.Millisecond)
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
