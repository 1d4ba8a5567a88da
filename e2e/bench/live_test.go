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

// exampleBackends writes the example projections' file, migrates a database of its own (named
// from prefix) for it and starts an emulator, stopped when t ends. It returns the file, the
// projections' names, the database's URL and the emulator.
func exampleBackends(t *testing.T, prefix string) (configFile string, names []string, dbURL string, e *emulator) {
	t.Helper()
	tmp := t.TempDir()
	configFile = filepath.Join(tmp, "projections.yaml")
	f, err := loadForm(Form{Name: "test", Configs: exampleConfigs}, configFile)
	if err != nil {
		t.Fatal(err)
	}
	dbURL = pgtest.NewDatabase(t, prefix)
	if err := Migrate(t.Context(), testBins, configFile, dbURL); err != nil {
		t.Fatal(err)
	}
	e, err = Options{}.startEmulator(t.Context(), testBins, tmp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Kill)
	return configFile, f.report.Projections, dbURL, e
}

// A daemon restarted on a database that has processed the log answers the wait for the head
// from its tracking rows at once, before it leads its projections: the read-your-writes rounds
// must not start until every projection is led on a live subscription, or the first round
// measures the daemon's start-up.
func TestStartLiveDaemonReturnsOnceEveryProjectionIsLedLive(t *testing.T) {
	ctx := t.Context()
	configFile, names, dbURL, e := exampleBackends(t, "projector_bench_live_")
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

// WaitLeading returns once the daemon leads every projection and reads its events: the
// status then shows each led, catching up or live, after a start-up that the catch-up's rate
// from then on leaves out, as the ceiling's does.
func TestWaitLeadingReturnsOnceEveryProjectionIsLed(t *testing.T) {
	ctx := t.Context()
	configFile, names, dbURL, e := exampleBackends(t, "projector_bench_leading_")
	start := time.Now()
	d, err := StartDaemon(testBins, configFile, dbURL, e.uri)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Proc.Kill()
	took, err := d.WaitLeading(ctx, names, start, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if took <= 0 || took > time.Since(start) {
		t.Errorf("start-up %v, not within the %v since the daemon started", took, time.Since(start))
	}
	list, err := d.Projections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Projections) != len(names) {
		t.Fatalf("the daemon lists %d projections, want %d", len(list.Projections), len(names))
	}
	for _, p := range list.Projections {
		if !p.Leader || (p.State != projection.StateCatchingUp && p.State != projection.StateLive) {
			t.Errorf("projection %s: state %s, leader %v once WaitLeading returned; want led and reading", p.Name, p.State, p.Leader)
		}
	}
}
