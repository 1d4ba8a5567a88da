package bench

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/testbin"
	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/source/kurrent"
	"github.com/projector-dev/projector/views/postgres/pgtest"
)

// testBins are the commands the end-to-end tests of this package run, built by TestMain.
var testBins Binaries

func TestMain(m *testing.M) {
	testbin.Main(m,
		testbin.Build{Package: "../../cmd/projector", Path: &testBins.Projector},
		testbin.Build{Package: "../../cmd/kurrentdb-emulator", Path: &testBins.Emulator})
}

// A daemon restarted on a database that has processed the log answers the wait for the head
// from its tracking rows at once, before it leads its projections: the read-your-writes rounds
// must not start until every projection is led on a live subscription, or the first round
// measures the daemon's start-up.
func TestStartLiveDaemonReturnsOnceEveryProjectionIsLedLive(t *testing.T) {
	ctx := t.Context()
	tmp := t.TempDir()
	configFile := filepath.Join(tmp, "projections.yaml")
	f, err := loadForm(Form{Name: "test", Configs: exampleConfigs}, configFile)
	if err != nil {
		t.Fatal(err)
	}
	names := f.report.Projections
	dbURL := pgtest.NewDatabase(t, "projector_bench_live_")
	if err := Migrate(ctx, testBins, configFile, dbURL); err != nil {
		t.Fatal(err)
	}
	e, err := Options{}.startEmulator(ctx, testBins, tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Kill()
	client, err := kurrent.NewClient(e.uri, kurrent.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	g := generator{idSpace: 2}
	head, err := appendStream(ctx, client, g.dog("live-test", 2))
	if err != nil {
		t.Fatal(err)
	}

	// The first daemon processes the log; its tracking rows stay past head.
	d, err := StartLiveDaemon(ctx, testBins, configFile, dbURL, e.uri, names, head, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Proc.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}

	d, err = StartLiveDaemon(ctx, testBins, configFile, dbURL, e.uri, names, head, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Proc.Kill()
	list, err := d.Projections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range list.Projections {
		seen[p.Name] = true
		if p.State != projection.StateLive || !p.Leader {
			t.Errorf("projection %s: state %s, leader %v once the restarted daemon is said live; want live and leader", p.Name, p.State, p.Leader)
		}
	}
	for _, name := range names {
		if !seen[name] {
			t.Errorf("projection %s absent from GET /v1/projections", name)
		}
	}
	if _, err := d.Proc.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}
}
