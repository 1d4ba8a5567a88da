package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/projector-dev/projector/examples/trainingschool"
	"github.com/projector-dev/projector/internal/poll"
	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/views/postgres"
)

// appender registers dogs with three tricks each, one append per dog, from a goroutine, until
// stopped: the load of a rolling update.
type appender struct {
	stop, done chan struct{}
	mu         sync.Mutex
	n          int    // dogs appended
	last       uint64 // commit position of the last append
	err        error
}

func startAppender(school *trainingschool.School, first int) *appender {
	a := &appender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for i := first; ; i++ {
			select {
			case <-a.stop:
				return
			case <-time.After(5 * time.Millisecond): // a steady trickle, not a flood
			}
			pos, err := school.RegisterWithTricks(context.Background(), fmt.Sprintf("dog-%05d", i), "trick 0", "trick 1", "trick 2")
			a.mu.Lock()
			if err != nil {
				a.err = err
				a.mu.Unlock()
				return
			}
			a.n, a.last = a.n+1, pos
			a.mu.Unlock()
		}
	}()
	return a
}

// appended returns the dogs appended so far.
func (a *appender) appended() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// finish stops the appender and returns how many dogs it appended and the last position.
func (a *appender) finish(t *testing.T) (int, uint64) {
	t.Helper()
	close(a.stop)
	<-a.done
	if a.err != nil {
		t.Fatalf("append: %v", a.err)
	}
	return a.n, a.last
}

// A rolling update under load: a replica with the old projections file runs while dogs are
// appended continuously and a reader queries the view; a replica with the new file (and
// keep_archives: 0) starts beside it, builds the new version and swaps it in; the old replica
// then runs the serving (new) version from its stored definition. The reader never sees fewer
// rows or tricks than before, every dog ends with exactly its three tricks and the new column
// filled, the old version's archive is dropped at the swap, and when the old replica is left
// alone the events it projects fill the new column.
func TestRollingUpdateUnderLoad(t *testing.T) {
	t.Parallel()
	dbURL, pool, uri, client := startBackends(t)
	const before = 100
	last := appendDogs(t, client, 0, before, 3)
	v1 := fmt.Sprintf(petsV1, 1000)
	v2 := fmt.Sprintf(petsV2, 20, "rebuild\n    keep_archives: 0", "")
	oldAddr, newAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	envOf := func(addr, yaml string) []string {
		return testbin.Env("KURRENTDB_URI="+uri, "DATABASE_URL="+dbURL, "PROJECTOR_HTTP_ADDR="+addr, "PROJECTOR_CONFIG="+writeFile(t, "projections.yaml", yaml))
	}
	old := start(t, projectorBin, envOf(oldAddr, v1), "run")
	healthy(t, old, oldAddr)
	waitHTTP(t, oldAddr, "pets", last)

	r := startReader(pool)
	load := startAppender(trainingschool.NewSchool(client), before)
	poll.Until(t, 30*time.Second, "dogs are appended", func() bool { return load.appended() >= 10 })
	upgraded := start(t, projectorBin, envOf(newAddr, v2), "run")
	healthy(t, upgraded, newAddr)
	id2 := fingerprint(t, v2)
	poll.Until(t, 90*time.Second, "the new version serves", func() bool { return versionState(t, pool, id2) == "serving" })
	swappedAt := load.appended()
	poll.Until(t, 30*time.Second, "the old replica runs the serving version", func() bool {
		return strings.Contains(old.Output(), "running the serving version as stored")
	})
	poll.Until(t, 30*time.Second, "more dogs are appended after the swap", func() bool { return load.appended() >= swappedAt+20 })
	during, lastPos := load.finish(t)
	waitHTTP(t, newAddr, "pets", lastPos)
	waitHTTP(t, oldAddr, "pets", lastPos)
	r.finish(t)

	dogs := before + during
	var rows, exact, filled int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE tricks = 3), count(*) FILTER (WHERE last_trick = 'trick 2') FROM pets`).Scan(&rows, &exact, &filled); err != nil {
		t.Fatal(err)
	}
	if rows != dogs || exact != dogs || filled != dogs {
		t.Fatalf("after the rolling update: %d rows, %d with exactly 3 tricks, %d with last_trick 'trick 2'; want %d of each", rows, exact, filled, dogs)
	}
	t.Logf("%d dogs appended during the update, %d of them after the swap", during, during-swappedAt)
	var archived int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`,
		postgres.ArchiveSchema("pets", fingerprint(t, v1))).Scan(&archived); err != nil || archived != 0 {
		t.Fatalf("the old version's archive exists after the swap under keep_archives: 0 (%d, %v)", archived, err)
	}
	poll.Until(t, 10*time.Second, "the log says the archive was dropped", func() bool {
		return strings.Contains(upgraded.Output()+old.Output(), "dropped the tables of older archived versions")
	})

	if code := upgraded.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	more := appendDogs(t, client, dogs, 20, 3)
	waitHTTP(t, oldAddr, "pets", more)
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(last_trick) FROM pets`).Scan(&rows, &filled); err != nil {
		t.Fatal(err)
	}
	if rows != dogs+20 || filled != dogs+20 {
		t.Fatalf("after the old replica alone projected 20 more dogs: %d rows, %d with last_trick; want %d of each", rows, filled, dogs+20)
	}
	if code := old.Signal(syscall.SIGTERM, exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
