package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentMigrate runs `projector migrate` from several processes at once against a new
// database, as the chart's init containers do when replicas start together: every one must
// succeed, and a later one must find nothing left to do but succeed too.
func TestConcurrentMigrate(t *testing.T) {
	dbURL := newDatabase(t)
	cfg := filepath.Join(t.TempDir(), "projections.yaml")
	if err := os.WriteFile(cfg, []byte(configDogsAndTricks), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"KURRENTDB_URI=kurrentdb://"+freeAddr(t)+"?tls=false", // migrate needs no KurrentDB
		"PROJECTOR_CONFIG="+cfg,
		"PROJECTOR_LOG_FORMAT=console",
	)
	migrate := func() ([]byte, error) {
		cmd := exec.Command(bins.projector, "migrate")
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	const replicas = 4
	var wg sync.WaitGroup
	outs := make([][]byte, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = migrate()
		}()
	}
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("migrate %d of %d started together: %v\n%s", i+1, replicas, errs[i], outs[i])
		}
	}
	if out, err := migrate(); err != nil {
		t.Errorf("migrate again: %v\n%s", err, out)
	}
}
