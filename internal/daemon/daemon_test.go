package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/projector-dev/projector/emulator"
	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/daemon"
	"github.com/projector-dev/projector/internal/httpapi"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/tracking"
	"github.com/projector-dev/projector/views/memory"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunServesTheRuntime runs the daemon in process on the emulator and the memory view: the
// HTTP API starts before the runtime, the wait API, status and metrics follow the runner, and
// everything ends with the context.
func TestRunServesTheRuntime(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/dlclark/regexp2.runClock"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := kurrent.NewClient(srv.URI(), kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	school := trainingschool.NewSchool(client)
	if _, err := school.RegisterWithTricks(ctx, "Fido", "roll over", "play dead"); err != nil {
		t.Fatal(err)
	}
	last, err := school.Register(ctx, "Milly")
	if err != nil {
		t.Fatal(err)
	}

	d, err := daemon.Start(zap.NewNop(), "127.0.0.1:0", []string{trainingschool.ProjectionName}, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.Addr()
	// Before Run: alive, not ready, projections starting.
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz before Run: %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before Run: %d %s", code, body)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	store := memory.New()
	src := kurrent.New(client, kurrent.Options{})
	go func() {
		done <- daemon.Run(runCtx, d, daemon.Config[*memory.Tx]{
			Source: src, Header: src, Store: store,
			Projections: []daemon.Projection[*memory.Tx]{{Projection: trainingschool.MemoryCounts()}},
		})
	}()
	code, body := get(t, base+"/v1/projections/"+trainingschool.ProjectionName+"/wait?position="+itoa(last)+"&timeout=30s")
	if code != 200 {
		t.Fatalf("wait: %d %s", code, body)
	}
	if store.Int("dogs") != 2 || store.Int("tricks") != 2 {
		t.Errorf("view: dogs %d tricks %d", store.Int("dogs"), store.Int("tricks"))
	}
	poll.UntilNil(t, 20*time.Second, "the projection is live and the daemon ready", func() error {
		var l httpapi.ListJSON
		_, body := get(t, base+"/v1/projections")
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Projections) != 1 || l.Projections[0].State != projection.StateLive || l.Head == nil || *l.Head < last {
			return fmt.Errorf("projections: %s", body)
		}
		if code, body := get(t, base+"/readyz"); code != 200 {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`projector_events_processed_total{projection="trainingschool-counts"} 4`,
		`projector_caught_up{projection="trainingschool-counts"} 1`,
		`projector_lag_seconds{projection="trainingschool-counts"} 0`,
		`projector_wait_duration_seconds_count{projection="trainingschool-counts"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := d.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type fakeHeader struct {
	pos  atomic.Uint64
	fail atomic.Bool
}

func (f *fakeHeader) Head(context.Context) (tracking.Position, time.Time, error) {
	if f.fail.Load() {
		return tracking.Position{}, time.Time{}, errors.New("unavailable")
	}
	p := f.pos.Load()
	return tracking.Position{Commit: p, Prepare: p}, time.Time{}, nil
}

func TestHeadPoller(t *testing.T) {
	h := &fakeHeader{}
	p := daemon.NewHeadPoller(h, time.Hour, zap.NewNop())
	if _, ok := p.Head(); ok || p.Err() == nil || !p.Read().IsZero() {
		t.Error("head known before a poll")
	}
	h.pos.Store(100)
	before := time.Now()
	p.Poll(context.Background())
	read := p.Read()
	if v, ok := p.Head(); !ok || v != 100 || p.Err() != nil || read.Before(before) || read.After(time.Now()) {
		t.Errorf("head %d %v %v read at %v", v, ok, p.Err(), read)
	}
	// A failed poll keeps the head and the time it was read, so the head shows its age.
	h.fail.Store(true)
	p.Poll(context.Background())
	if v, ok := p.Head(); !ok || v != 100 || p.Err() == nil || !strings.Contains(p.Err().Error(), "KurrentDB: unavailable") || !p.Read().Equal(read) {
		t.Errorf("after a failure: %d %v %v read at %v, want %v", v, ok, p.Err(), p.Read(), read)
	}
	prov := daemon.NewProvider([]string{"a"}, nil)
	if !prov.HeadRead().IsZero() {
		t.Error("HeadRead without a head poller is not zero")
	}
	prov.SetHead(p)
	if !prov.HeadRead().Equal(read) {
		t.Errorf("provider HeadRead = %v, want %v", prov.HeadRead(), read)
	}
	prov.AddCheck(func(context.Context) error { return errors.New("PostgreSQL: down") })
	err := prov.Connected(context.Background())
	if err == nil || !strings.Contains(err.Error(), "KurrentDB: unavailable") || !strings.Contains(err.Error(), "PostgreSQL: down") {
		t.Errorf("Connected = %v", err)
	}
	if st := prov.Statuses(); len(st) != 1 || st[0].State != projection.StateStarting {
		t.Errorf("statuses before the runner: %+v", st)
	}
	h.fail.Store(false)
	h.pos.Store(90) // a head behind the one known (another node) keeps the known one, read now
	time.Sleep(time.Millisecond)
	p.Poll(context.Background())
	if v, _ := p.Head(); v != 100 || !p.Read().After(read) {
		t.Errorf("after a new read: head %d read at %v (before %v)", v, p.Read(), read)
	}
}

func TestRetry(t *testing.T) {
	var n int
	err := daemon.Retry(context.Background(), zap.NewNop(), "thing", time.Millisecond, 4*time.Millisecond, func(context.Context) error {
		n++
		if n < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 4 {
		t.Errorf("Retry = %v after %d calls", err, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = daemon.Retry(ctx, zap.NewNop(), "thing", time.Millisecond, 2*time.Millisecond, func(context.Context) error { return errors.New("never") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Retry until the deadline = %v", err)
	}
}

// A projection that gets past the polled head between two polls raises the head, so no status
// shows a position past the head; nothing is known before the first poll.
func TestHeadPollerIsRaisedByCommittedBatches(t *testing.T) {
	h := &fakeHeader{}
	p := daemon.NewHeadPoller(h, time.Hour, zap.NewNop())
	committed := func(commit uint64) projection.CommittedBatch {
		return projection.CommittedBatch{Projection: "a", Events: 1, State: tracking.State{Last: tracking.Position{Commit: commit, Prepare: commit}}}
	}
	p.BatchCommitted(committed(50))
	if _, ok := p.Head(); ok {
		t.Error("a committed batch made the head known before a poll")
	}
	h.pos.Store(100)
	p.Poll(context.Background())
	p.BatchCommitted(committed(150))
	if v, _ := p.Head(); v != 150 {
		t.Errorf("head after a batch at 150 = %d, want 150", v)
	}
	p.BatchCommitted(committed(120))
	h.pos.Store(140)
	p.Poll(context.Background())
	if v, _ := p.Head(); v != 150 {
		t.Errorf("head after a batch at 120 and a poll reading 140 = %d, want 150", v)
	}
}
