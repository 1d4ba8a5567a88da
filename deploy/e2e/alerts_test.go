package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/deploy/metricnames"
)

// configPoison has a healthy projection and one (policy stop) whose table refuses the trick
// "poison", so it halts on that event.
const configPoison = `projections:
  - name: dog_counts
    batch: {size: 100, interval: 10ms}
    on_error: {policy: stop}
    start: beginning
    schema: |
      CREATE TABLE IF NOT EXISTS dog_counts (name text PRIMARY KEY, n bigint NOT NULL);
    handlers:
      "__main__:Dog.Registered": |
        INSERT INTO dog_counts VALUES ('dogs', 1)
        ON CONFLICT (name) DO UPDATE SET n = dog_counts.n + 1;
      "__main__:Dog.TrickAdded": |
        INSERT INTO dog_counts VALUES ('tricks', 1)
        ON CONFLICT (name) DO UPDATE SET n = dog_counts.n + 1;
  - name: strict_tricks
    batch: {size: 100, interval: 10ms}
    on_error: {policy: stop}
    start: beginning
    schema: |
      CREATE TABLE IF NOT EXISTS strict_tricks (trick text NOT NULL CHECK (trick <> 'poison'));
    handlers:
      "__main__:Dog.TrickAdded": |
        INSERT INTO strict_tricks VALUES (@data->>'trick');
`

// shortened rewrites an alert expression for a test that cannot wait minutes: ranges in
// minutes become as many seconds, and the lag threshold one second.
func shortened(expr string) string {
	expr = regexp.MustCompile(`\[(\d+)m\]`).ReplaceAllString(expr, "[${1}s]")
	return strings.ReplaceAll(expr, "> 300", "> 1")
}

// TestAlertsOnRealStoppedProjection stops a real projection on a poison event and evaluates
// the alert rules' expressions (their ranges shortened from minutes to seconds) in a real
// Prometheus scraping the daemon: the stopped projection must be reported as stopped, not
// moving and lagging, and the healthy one next to it by none of the rules.
func TestAlertsOnRealStoppedProjection(t *testing.T) {
	s := startStack(t, configPoison)
	prom := startPrometheus(t, s.httpAddr)

	s.appendEvents(t, "dog-fido", dog("Fido", "sit", "poison", "beg")...)
	last := s.appendEvents(t, "dog-rex", dog("Rex", "fetch")...)
	s.waitProjected(t, "dog_counts", last, 60*time.Second)
	eventually(t, 60*time.Second, "strict_tricks stopped", func() error {
		_, body, err := httpGet("http://" + s.httpAddr + "/v1/projections/strict_tricks")
		if err != nil {
			return err
		}
		var p struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		if p.State != "stopped" {
			return fmt.Errorf("state %q", p.State)
		}
		return nil
	})

	rules, err := metricnames.RuleExprs("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	projections := func(alert string) ([]string, error) {
		res, err := prom.query(shortened(rules[alert]))
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range res {
			out = append(out, r.Metric["projection"])
		}
		return out, nil
	}
	for _, alert := range []string{"ProjectorStopped", "ProjectorNoProgress", "ProjectorLagHigh"} {
		eventually(t, 60*time.Second, alert+" reports strict_tricks", func() error {
			got, err := projections(alert)
			if err == nil && !slices.Equal(got, []string{"strict_tricks"}) {
				err = fmt.Errorf("reports %v, want [strict_tricks]", got)
			}
			return err
		})
	}
	for _, alert := range []string{"ProjectorNoLeader", "ProjectorDeadLettersGrowing", "ProjectorStreamsParked", "ProjectorTargetDown", "ProjectorAllDown"} {
		res, err := prom.query(shortened(rules[alert]))
		if err != nil {
			t.Fatal(err)
		}
		if len(res) > 0 {
			t.Errorf("%s reports %v", alert, res)
		}
	}
}

// TestAlertsOnRealKurrentDBOutage stops KurrentDB (the emulator) under a caught-up projection
// and evaluates the alert rules' expressions (ranges shortened) in a real Prometheus: the
// leader is then retrying, not caught up and not moving, while the head it knows is stale, so
// its lag in positions stays where it was. ProjectorNoProgress must report it whatever that
// lag reads, and ProjectorStopped (no handler failed) must not.
func TestAlertsOnRealKurrentDBOutage(t *testing.T) {
	s := startStack(t, "projections:\n"+dogCountsProjection)
	prom := startPrometheus(t, s.httpAddr)

	last := s.appendEvents(t, "dog-fido", dog("Fido", "sit", "beg")...)
	s.waitProjected(t, "dog_counts", last, 60*time.Second)

	rules, err := metricnames.RuleExprs("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	reported := func(alert string) ([]string, error) {
		res, err := prom.query(shortened(rules[alert]))
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range res {
			out = append(out, r.Metric["projection"])
		}
		return out, nil
	}

	// Caught up and idle for longer than the shortened range: nothing to report.
	eventually(t, 60*time.Second, "dog_counts caught up in Prometheus", func() error {
		v, err := prom.scalar(`max(projector_caught_up{projection="dog_counts"})`)
		if err == nil && v != 1 {
			err = fmt.Errorf("projector_caught_up %v", v)
		}
		return err
	})
	time.Sleep(12 * time.Second)
	for _, alert := range []string{"ProjectorNoProgress", "ProjectorStopped"} {
		got, err := reported(alert)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			t.Fatalf("%s reports %v while dog_counts is caught up and idle", alert, got)
		}
	}

	s.emulator.stop(t)
	eventually(t, 90*time.Second, "ProjectorNoProgress reports dog_counts during the outage", func() error {
		got, err := reported("ProjectorNoProgress")
		if err == nil && !slices.Equal(got, []string{"dog_counts"}) {
			err = fmt.Errorf("reports %v, want [dog_counts]", got)
		}
		return err
	})
	lag, err := prom.scalar(`max(projector_lag_positions{projection="dog_counts"})`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("projector_lag_positions during the outage: %v", lag)
	if got, err := reported("ProjectorStopped"); err != nil || len(got) > 0 {
		t.Errorf("ProjectorStopped reports %v (%v) during an outage", got, err)
	}
}
