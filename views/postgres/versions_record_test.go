package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/projector-dev/projector/views/postgres"
)

// Replicas starting together record the first serving version of a projection at the same
// moment: every one succeeds, and one version serves.
func TestRecordVersionFromReplicasStartingTogether(t *testing.T) {
	store, pool := versionedStore(t)
	def := dogsV1()
	id := def.Fingerprint()
	const replicas = 32
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	start := make(chan struct{})
	for range replicas {
		wg.Go(func() {
			<-start
			errs <- store.RecordVersion(context.Background(), def, id, postgres.Serving)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a replica could not record the version: %v", err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM projector_versions WHERE projection = 'dogs' AND state = 'serving'`); n != 1 {
		t.Errorf("%d serving versions, want 1", n)
	}
}
