package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
)

// bothBatchProjections is examples/dog_counts_batch.yaml followed by the projections of
// examples/training_school_batch.yaml, with batches of 7 events.
func bothBatchProjections(t *testing.T) string {
	t.Helper()
	var files []string
	for _, f := range []string{"dog_counts_batch.yaml", "training_school_batch.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, string(b))
	}
	_, rest, ok := strings.Cut(files[1], "projections:\n")
	if !ok {
		t.Fatal("training_school_batch.yaml has no projections list")
	}
	cfg := strings.Replace(files[0]+rest, "      size: 1000\n      interval: 10ms\n", "", 1)
	cfg = strings.ReplaceAll(cfg, "    batch:\n", "    batch:\n      size: 7\n      interval: 1ms\n")
	if strings.Count(cfg, "size: 7") != 2 || strings.Contains(cfg, "size: 1000") {
		t.Fatal("could not set the batch size")
	}
	return cfg
}

// TestSIGKILLAndRestartBatchProjections kills the daemon running batch SQL mid-stream, twice,
// while events are being written, and checks that the final views count every event exactly
// once: the same views the per-event projections build.
func TestSIGKILLAndRestartBatchProjections(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	cfgFile := writeFile(t, "projections.yaml", bothBatchProjections(t))
	addr := testbin.FreeAddr(t)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+cfgFile)

	const dogs, tricks = 150, 9
	var last atomic.Uint64
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; i < dogs; i += 10 {
			last.Store(appendDogs(t, client, i, 10, tricks))
			time.Sleep(20 * time.Millisecond)
		}
	}()

	projected := func() int {
		var n int
		_ = pool.QueryRow(context.Background(), "SELECT coalesce(sum(n), 0) FROM dog_counts").Scan(&n)
		return n
	}
	for kill, threshold := range []int{300, 900} {
		d := start(t, projectorBin, env, "run")
		healthy(t, d, addr)
		poll.Until(t, 60*time.Second, fmt.Sprintf("%d events are projected", threshold), func() bool { return projected() >= threshold })
		if code := d.Signal(syscall.SIGKILL, exitTimeout); code != -1 {
			t.Fatalf("kill %d: exit code %d, want -1 (killed)", kill, code)
		}
	}
	d := start(t, projectorBin, env, "run")
	healthy(t, d, addr)
	<-written
	if t.Failed() {
		return
	}
	waitHTTP(t, addr, "dog_counts", last.Load())
	waitHTTP(t, addr, "dogs", last.Load())
	want := fmt.Sprintf("dogs=%d,tricks=%d dogs=%d tricks=%d rows=%d", dogs, dogs*tricks, dogs, dogs*tricks, dogs*tricks)
	if got := viewDigest(t, pool); !strings.HasPrefix(got, want) {
		t.Fatalf("after two kills: %s, want %s", got, want)
	}
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}
