package trainingschool_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
	"github.com/projector-dev/projector/views/postgres"
	"github.com/projector-dev/projector/views/postgres/pgtest"
	"go.uber.org/goleak"
)

// Environment of the child process the crash test starts (this test binary, re-executed).
const (
	envChild      = "TRAININGSCHOOL_TEST_CHILD"
	envURI        = "TRAININGSCHOOL_TEST_KURRENTDB_URI"
	envSchema     = "TRAININGSCHOOL_TEST_SCHEMA"
	envBlockAfter = "TRAININGSCHOOL_TEST_BLOCK_AFTER"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(child())
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/dlclark/regexp2.runClock"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"))
}

// child runs the PostgreSQL projection until it is killed. With envBlockAfter = n > 0, the
// handler of the n-th event it handles sends the batch's statements so far, prints BLOCKED and
// blocks: the process is then between handler and commit, with uncommitted writes.
func child() int {
	ctx := context.Background()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	cfg, err := pgxpool.ParseConfig(pgtest.URL())
	if err != nil {
		return fail(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = os.Getenv(envSchema)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	client, err := kurrent.NewClient(os.Getenv(envURI), kurrent.ClientOptions{})
	if err != nil {
		return fail(err)
	}
	blockAfter, _ := strconv.Atoi(os.Getenv(envBlockAfter))
	counts := trainingschool.PostgresCounts()
	handled := 0
	p := projection.New[pgx.Tx](counts.Name())
	for _, topic := range counts.Topics() {
		p.On(topic, func(ctx context.Context, tx pgx.Tx, e projection.Event) error {
			if err := counts.Handle(ctx, tx, e); err != nil {
				return err
			}
			handled++
			if handled == blockAfter {
				if err := tx.(*postgres.Tx).Flush(ctx); err != nil {
					return err
				}
				fmt.Println("BLOCKED")
				for {
					time.Sleep(time.Hour) // until the parent kills this process
				}
			}
			return nil
		})
	}
	r := projection.NewRunner(kurrent.New(client, kurrent.Options{}), postgres.New(pool, postgres.Options{}), projection.Options{})
	if err := r.Add(p, projection.ProjectionOptions{BatchSize: 50}); err != nil {
		return fail(err)
	}
	fmt.Println("RUNNING")
	_ = r.Run(ctx)
	return 0
}

type env struct {
	srv    *emulator.Server
	client *kurrentdb.Client
	school *trainingschool.School
	schema string
	pool   *pgxpool.Pool
	store  *postgres.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	schema := pgtest.NewSchema(t)
	e := &env{srv: srv, client: client, school: trainingschool.NewSchool(client), schema: schema, pool: pgtest.Pool(t, schema)}
	e.store = e.newStore(t)
	if err := e.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := trainingschool.Schema(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	return e
}

// newStore returns a store with a pool of its own, as another replica would have.
func (e *env) newStore(t testing.TB) *postgres.Store {
	s := postgres.New(pgtest.Pool(t, e.schema), postgres.Options{})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fill registers dogs dogs with tricks tricks each and returns the last event's position.
func (e *env) fill(t testing.TB, prefix string, dogs, tricks int) uint64 {
	t.Helper()
	var last uint64
	names := make([]string, tricks)
	for i := range names {
		names[i] = fmt.Sprint("trick ", i)
	}
	for i := range dogs {
		p, err := e.school.RegisterWithTricks(context.Background(), fmt.Sprint(prefix, i), names...)
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	return last
}

// positions lists the commit positions of the training-school events in $all.
func (e *env) positions(t *testing.T) []uint64 {
	t.Helper()
	src := kurrent.New(e.client, kurrent.Options{})
	sub, err := src.Subscribe(context.Background(), trainingschool.PostgresCounts().Topics(), tracking.State{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []uint64
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Kind {
		case projection.EventMessage:
			out = append(out, m.Event.Position.Commit)
		case projection.CaughtUpMessage:
			return out
		}
	}
}

func (e *env) counts(t testing.TB) (dogs, tricks int64) {
	t.Helper()
	dogs, tricks, err := trainingschool.Counts(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	return dogs, tricks
}

func run(t testing.TB, r *projection.Runner[pgx.Tx]) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t testing.TB, w tracking.Waiter, commit uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, err := w.Wait(ctx, trainingschool.ProjectionName, commit); err != nil {
		t.Fatalf("Wait(%d): %v (at %v)", commit, err, s)
	}
}

func TestPostgresViewCountsDogsAndTricks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.fill(t, "dog ", 3, 2)
	// A decoy whose type only an unescaped filter would match, and an unrelated event.
	for _, typ := range []string{"__main__:DogXRegistered", "__main__:Cat.Registered"} {
		if _, err := e.client.AppendToStream(ctx, "decoys", kurrentdb.AppendToStreamOptions{}, kurrentdb.EventData{EventType: typ, Data: []byte(`{"name":"x"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	last, err := e.school.AddTrick(ctx, "dog 1", "fetch")
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), e.store, projection.Options{})
	if err := r.Add(trainingschool.PostgresCounts(), projection.ProjectionOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitFor(t, r, last)
	if dogs, tricks := e.counts(t); dogs != 3 || tricks != 7 {
		t.Fatalf("counts = %d dogs, %d tricks; want 3, 7", dogs, tricks)
	}
	var tricks []string
	if err := e.pool.QueryRow(ctx, `SELECT tricks FROM trainingschool_dogs WHERE name = 'dog 1'`).Scan(&tricks); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tricks, ",") != "trick 0,trick 1,fetch" {
		t.Errorf("dog 1 tricks = %v", tricks)
	}
	// Live: the application waits for its own write through PostgreSQL alone.
	pos, err := e.school.AddTrick(ctx, "dog 2", "sit")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, e.newStore(t), pos)
	if dogs, tricks := e.counts(t); dogs != 3 || tricks != 8 {
		t.Fatalf("counts = %d dogs, %d tricks; want 3, 8", dogs, tricks)
	}
	// A wait for the position of an event the projection does not subscribe to returns once
	// the subscription has passed it (here: the catch-up's checkpoint, then live checkpoints).
	res, err := e.client.AppendToStream(ctx, "decoys", kurrentdb.AppendToStreamOptions{}, kurrentdb.EventData{EventType: "__main__:Cat.Registered", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for range 40 { // the server checkpoints every 32 events considered while live
		if _, err := e.client.AppendToStream(ctx, "other", kurrentdb.AppendToStreamOptions{}, kurrentdb.EventData{EventType: "Other", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, e.store, res.CommitPosition)
}

type batchCounter struct {
	projection.NopObserver
	mu      sync.Mutex
	batches []int
}

func (c *batchCounter) BatchCommitted(b projection.CommittedBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.Events > 0 {
		c.batches = append(c.batches, b.Events)
	}
}

func TestTenThousandEventsCommitAsFewTransactions(t *testing.T) {
	e := newEnv(t)
	last := e.fill(t, "dog ", 1000, 9)
	obs := &batchCounter{}
	r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), e.store, projection.Options{Observer: obs})
	if err := r.Add(trainingschool.PostgresCounts(), projection.ProjectionOptions{BatchSize: 1000, BatchInterval: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitFor(t, r, last)
	if dogs, tricks := e.counts(t); dogs != 1000 || tricks != 9000 {
		t.Fatalf("counts = %d, %d; want 1000, 9000", dogs, tricks)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	sum := 0
	for _, n := range obs.batches {
		sum += n
	}
	if sum != 10000 || len(obs.batches) > 20 {
		t.Errorf("10,000 events took %d transactions (%v), want at most 20", len(obs.batches), obs.batches)
	}
}

// BenchmarkPostgresView measures the events per second the PostgreSQL view of the training
// school sustains: a fresh projection catching up on 10,000 events from the emulator.
func BenchmarkPostgresView(b *testing.B) {
	e := newEnv(b)
	last := e.fill(b, "dog ", 1000, 9)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := e.pool.Exec(ctx, `TRUNCATE trainingschool_counters, trainingschool_dogs`); err != nil {
			b.Fatal(err)
		}
		if err := e.store.Reset(ctx, trainingschool.ProjectionName); err != nil {
			b.Fatal(err)
		}
		r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), e.store, projection.Options{})
		if err := r.Add(trainingschool.PostgresCounts(), projection.ProjectionOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		stop := run(b, r)
		waitFor(b, r, last)
		b.StopTimer()
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryView is BenchmarkPostgresView over the in-memory view.
func BenchmarkMemoryView(b *testing.B) {
	e := newEnv(b)
	last := e.fill(b, "dog ", 1000, 9)
	b.ResetTimer()
	for range b.N {
		view := memory.New()
		r := projection.NewRunner(kurrent.New(e.client, kurrent.Options{}), view, projection.Options{})
		if err := r.Add(trainingschool.MemoryCounts(), projection.ProjectionOptions{}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := r.Wait(wctx, trainingschool.ProjectionName, last)
		wcancel()
		b.StopTimer()
		cancel()
		<-done
		if err != nil || view.Int("dogs") != 1000 || view.Int("tricks") != 9000 {
			b.Fatalf("wait: %v; counts %d, %d", err, view.Int("dogs"), view.Int("tricks"))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "events/s")
}
