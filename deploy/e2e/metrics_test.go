package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/projector-dev/projector/deploy/metricnames"
)

// dogCountsProjection is the dog_counts projection, an item of a projections file's list: it
// counts registered dogs and added tricks (policy stop).
const dogCountsProjection = `  - name: dog_counts
    batch: {size: 100, interval: 10ms}
    on_error: {policy: stop}
    start: beginning
    schema: |
      CREATE TABLE IF NOT EXISTS dog_counts (name text PRIMARY KEY, n bigint NOT NULL);
    reset: |
      TRUNCATE dog_counts;
    handlers:
      "__main__:Dog.Registered": |
        INSERT INTO dog_counts VALUES ('dogs', 1)
        ON CONFLICT (name) DO UPDATE SET n = dog_counts.n + 1;
      "__main__:Dog.TrickAdded": |
        INSERT INTO dog_counts VALUES ('tricks', 1)
        ON CONFLICT (name) DO UPDATE SET n = dog_counts.n + 1;
`

// configDogsAndTricks projects dog and trick counts (policy stop) and a list of tricks (policy
// skip) whose table refuses the trick "poison", so a poison event is dead-lettered.
const configDogsAndTricks = "projections:\n" + dogCountsProjection + `  - name: trick_list
    batch: {size: 100, interval: 10ms}
    on_error: {policy: skip, retries: 1, backoff: 10ms}
    start: beginning
    schema: |
      CREATE TABLE IF NOT EXISTS trick_list (trick text NOT NULL CHECK (trick <> 'poison'));
    reset: |
      TRUNCATE trick_list;
    handlers:
      "__main__:Dog.TrickAdded": |
        INSERT INTO trick_list VALUES (@data->>'trick');
`

// TestEveryMetricUsedIsExported runs the daemon through ordinary work (events projected, a
// poison event dead-lettered, a wait answered, a KurrentDB restart survived) and checks that its
// /metrics page exports every metric the alert rules and the dashboard query, and every metric
// of the daemon's contract.
func TestEveryMetricUsedIsExported(t *testing.T) {
	s := startStack(t, configDogsAndTricks)

	var evs []event
	for i := range 20 {
		evs = append(evs, dog(fmt.Sprintf("dog-%d", i), "sit", "roll over")...)
	}
	s.appendEvents(t, "dogs-batch-1", evs...)
	pos := s.appendEvents(t, "dog-poisoned", dog("Rex", "fetch", "poison", "beg")...)
	s.waitProjected(t, "dog_counts", pos, 60*time.Second)
	s.waitProjected(t, "trick_list", pos, 60*time.Second)

	// A KurrentDB restart breaks the subscriptions; the daemon restarts them and carries on.
	s.restartEmulator(t)
	pos = s.appendEvents(t, "dog-after-restart", dog("Bella", "shake")...)
	s.waitProjected(t, "dog_counts", pos, 90*time.Second)
	s.waitProjected(t, "trick_list", pos, 90*time.Second)

	page := s.metrics(t)
	exposed, err := metricnames.Exposed(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := metricnames.InRules("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := metricnames.InDashboard("../prometheus/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what  string
		names []string
	}{{"alerts.yml", rules}, {"dashboard.json", dashboard}, {"the daemon's metric contract", metricnames.Contract()}} {
		if missing := metricnames.Missing(c.names, exposed); len(missing) > 0 {
			t.Errorf("%s uses metrics the running daemon does not export: %v", c.what, missing)
		}
	}
	// The standard Go and process collectors are there too.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := exposed[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
	// Histograms really are histograms (the dashboard takes quantiles of their buckets).
	for _, name := range []string{"projector_batch_duration_seconds", "projector_batch_events", "projector_wait_duration_seconds"} {
		if exposed[name] != "histogram" {
			t.Errorf("%s is a %q, not a histogram", name, exposed[name])
		}
	}
	// The poison trick went to the dead letters, and the restart was counted.
	for _, want := range []string{
		`projector_events_dead_lettered_total{projection="trick_list"} 1`,
		`projector_errors_total{kind="handler",projection="trick_list"}`,
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !slices.ContainsFunc(bytes.Split(page, []byte("\n")), func(l []byte) bool {
		return bytes.HasPrefix(l, []byte("projector_subscription_restarts_total{")) && !bytes.HasSuffix(l, []byte(" 0"))
	}) {
		t.Error("no subscription restart counted after the KurrentDB restart")
	}
}
