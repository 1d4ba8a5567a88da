package main

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/views/postgres"
)

// rebuildBenchDogs dogs with rebuildBenchTricks tricks each: 50,000 events.
const rebuildBenchDogs, rebuildBenchTricks = 10_000, 4

// BenchmarkRebuildVsCatchUp measures, with the real binaries, the time a daemon takes to catch
// up a fresh projection (pets, batches of 1000) with 50,000 events, from its start until the
// projection's position reaches the last event, and then the time a rebuild of the same
// definition takes, from projector rebuild until the shadow's position reaches the serving
// position (both include the daemon's pickup: its start, or noticing the build within a
// second). It reports both in seconds and their ratio, rebuild/catchup, and the ratio of the
// times from the first batch committed to the end, without the pickup (catchup-moving-s,
// rebuild-moving-s, rebuild/catchup-moving). Run it with
// -benchtime=1x: each iteration appends the events again into fresh backends.
func BenchmarkRebuildVsCatchUp(b *testing.B) {
	var total, moving [2]time.Duration // catch-up, rebuild
	for range b.N {
		t, m := rebuildVsCatchUp(b)
		for i := range 2 {
			total[i] += t[i]
			moving[i] += m[i]
		}
	}
	b.ReportMetric(total[0].Seconds()/float64(b.N), "catchup-s")
	b.ReportMetric(total[1].Seconds()/float64(b.N), "rebuild-s")
	b.ReportMetric(total[1].Seconds()/total[0].Seconds(), "rebuild/catchup")
	b.ReportMetric(moving[0].Seconds()/float64(b.N), "catchup-moving-s")
	b.ReportMetric(moving[1].Seconds()/float64(b.N), "rebuild-moving-s")
	b.ReportMetric(moving[1].Seconds()/moving[0].Seconds(), "rebuild/catchup-moving")
}

// rebuildVsCatchUp runs one measurement of BenchmarkRebuildVsCatchUp: the times of the catch-up
// and of the rebuild from their start (total) and from their first batch committed (moving).
func rebuildVsCatchUp(b *testing.B) (total, moving [2]time.Duration) {
	b.StopTimer()
	dbURL, pool, uri, client := startBackends(b)
	ctx := context.Background()
	school := trainingschool.NewSchool(client)
	tricks := make([]string, rebuildBenchTricks)
	for i := range tricks {
		tricks[i] = fmt.Sprintf("trick %d", i)
	}
	var last uint64
	for i := range rebuildBenchDogs {
		pos, err := school.RegisterWithTricks(ctx, fmt.Sprintf("dog-%05d", i), tricks...)
		if err != nil {
			b.Fatal(err)
		}
		last = pos
	}
	yaml := fmt.Sprintf(petsV1, 1000)
	addr := testbin.FreeAddr(b)
	env := testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+writeFile(b, "projections.yaml", yaml))
	b.StartTimer()

	began := time.Now()
	d := start(b, projectorBin, env, "run")
	moved := waitPosition(b, pool, "pets", last)
	total[0], moving[0] = time.Since(began), time.Since(moved)

	began = time.Now()
	cmd := exec.Command(projectorBin, "rebuild", "pets")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("projector rebuild: %v\n%s", err, out)
	}
	shadow := postgres.VersionTracking("pets", fingerprint(b, yaml)+"~1")
	moved = waitPosition(b, pool, shadow, last)
	total[1], moving[1] = time.Since(began), time.Since(moved)
	b.StopTimer()
	if code := d.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		b.Fatalf("projector run: exit %d", code)
	}
	return total, moving
}

// waitPosition polls the tracking row tracking every 10 ms until its position reaches position,
// and returns when it first saw it above 0 (a first batch committed).
func waitPosition(b *testing.B, pool *pgxpool.Pool, tracking string, position uint64) (moved time.Time) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var at uint64
		_ = pool.QueryRow(context.Background(), `SELECT commit_position FROM projector_tracking WHERE projection = $1`, tracking).Scan(&at)
		if at > 0 && moved.IsZero() {
			moved = time.Now()
		}
		if at >= position {
			return moved
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s has not reached position %d in 10 minutes (at %d)", tracking, position, at)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
