package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/deploy/metricnames"
)

// configSlow adds to dog_counts a projection slow enough (20ms an event, 5 events a batch) that
// Prometheus, scraping every second, sees it behind and moving while it works through a burst.
const configSlow = "projections:\n" + dogCountsProjection + `  - name: slow_tricks
    batch: {size: 5, interval: 10ms}
    on_error: {policy: stop}
    start: beginning
    schema: |
      CREATE TABLE IF NOT EXISTS slow_tricks (trick text NOT NULL);
    reset: |
      TRUNCATE slow_tricks;
    handlers:
      "__main__:Dog.TrickAdded": |
        SELECT pg_sleep(0.02);
        INSERT INTO slow_tricks VALUES (@data->>'trick');
`

// promServer is a running Prometheus and its HTTP API.
type promServer struct {
	base string
}

func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	rules, err := filepath.Abs("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: projector
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := start(t, "prometheus", nil, bins.prometheus,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	ps := &promServer{base: "http://" + addr}
	eventually(t, 60*time.Second, "Prometheus ready", func() error {
		if p.exited() {
			t.Fatal("Prometheus exited")
		}
		code, body, err := httpGet(ps.base + "/-/ready")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	return ps
}

// sample is one series of an instant query's result.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant PromQL query through Prometheus's HTTP API.
func (p *promServer) query(q string) ([]sample, error) {
	code, body, err := httpGet(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %s: status %d: %w", q, code, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s", q, r.Data.ResultType)
	}
	var out []sample
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, s.Value[1], err)
		}
		out = append(out, sample{Metric: s.Metric, Value: v})
	}
	return out, nil
}

// scalar runs a query that must return exactly one series and returns its value.
func (p *promServer) scalar(q string) (float64, error) {
	r, err := p.query(q)
	if err != nil {
		return 0, err
	}
	if len(r) != 1 {
		return 0, fmt.Errorf("query %s: %d series, want 1: %+v", q, len(r), r)
	}
	return r[0].Value, nil
}

// TestPrometheusScrapesProjector runs Debian's Prometheus against a running daemon (with the
// emulator and PostgreSQL) and the project's alert rules, and checks through Prometheus's query
// API that projector_lag_seconds and projector_position are scraped and move as events are
// projected, that every alert rule evaluates cleanly, and that every dashboard query runs.
func TestPrometheusScrapesProjector(t *testing.T) {
	s := startStack(t, configSlow)
	prom := startPrometheus(t, s.httpAddr)

	eventually(t, 30*time.Second, "Prometheus scrapes the daemon", func() error {
		v, err := prom.scalar(`up{job="projector"}`)
		if err == nil && v != 1 {
			err = fmt.Errorf("up = %v", v)
		}
		return err
	})

	// A first dog: the projections catch up and Prometheus sees their position.
	p1 := s.appendEvents(t, "dog-fido", dog("Fido", "sit")...)
	s.waitProjected(t, "slow_tricks", p1, 60*time.Second)
	var before float64
	eventually(t, 30*time.Second, "Prometheus sees slow_tricks at the first position", func() error {
		v, err := prom.scalar(`projector_position{job="projector",projection="slow_tricks"}`)
		if err == nil && v < float64(p1) {
			err = fmt.Errorf("projector_position = %v, want ≥ %d", v, p1)
		}
		before = v
		return err
	})
	eventually(t, 30*time.Second, "lag 0 once caught up", func() error {
		v, err := prom.scalar(`projector_lag_seconds{job="projector",projection="slow_tricks"}`)
		if err == nil && v != 0 {
			err = fmt.Errorf("projector_lag_seconds = %v", v)
		}
		return err
	})

	// A burst of 300 tricks takes slow_tricks several seconds: Prometheus sees it behind, then
	// moving, then caught up again.
	burstStart := time.Now()
	var tricks []string
	for i := range 300 {
		tricks = append(tricks, fmt.Sprintf("trick-%d", i))
	}
	p2 := s.appendEvents(t, "dog-rex", dog("Rex", tricks...)...)
	s.waitProjected(t, "slow_tricks", p2, 120*time.Second)
	if took := time.Since(burstStart); took < 3*time.Second {
		t.Fatalf("the burst was projected in %s; too fast for Prometheus to see it move", took)
	}
	eventually(t, 30*time.Second, "Prometheus sees slow_tricks at the burst's end", func() error {
		v, err := prom.scalar(`projector_position{job="projector",projection="slow_tricks"}`)
		if err == nil && v < float64(p2) {
			err = fmt.Errorf("projector_position = %v, want ≥ %d", v, p2)
		}
		return err
	})
	// The window starts after the burst began (whole seconds, rounded down).
	window := fmt.Sprintf("[%ds]", int(time.Since(burstStart).Seconds()))

	if v, err := prom.scalar(`max_over_time(projector_lag_seconds{job="projector",projection="slow_tricks"}` + window + `)`); err != nil || v <= 0 {
		t.Errorf("projector_lag_seconds never rose above 0 during the burst: %v %v", v, err)
	}
	if v, err := prom.scalar(`max_over_time(projector_lag_positions{job="projector",projection="slow_tricks"}` + window + `)`); err != nil || v <= 0 {
		t.Errorf("projector_lag_positions never rose above 0 during the burst: %v %v", v, err)
	}
	if v, err := prom.scalar(`changes(projector_position{job="projector",projection="slow_tricks"}` + window + `)`); err != nil || v < 2 {
		t.Errorf("projector_position changed %v times during the burst, want several: %v", v, err)
	}
	if v, err := prom.scalar(`min_over_time(projector_position{job="projector",projection="slow_tricks"}` + window + `)`); err != nil || v < before || v >= float64(p2) {
		t.Errorf("projector_position during the burst started at %v, want between %v and %d: %v", v, before, p2, err)
	}
	eventually(t, 30*time.Second, "lag back to 0 and caught up after the burst", func() error {
		lag, err := prom.scalar(`projector_lag_seconds{job="projector",projection="slow_tricks"}`)
		if err != nil {
			return err
		}
		up, err := prom.scalar(`projector_caught_up{job="projector",projection="slow_tricks"}`)
		if err != nil {
			return err
		}
		if lag != 0 || up != 1 {
			return fmt.Errorf("lag %v, caught up %v", lag, up)
		}
		return nil
	})
	// Every event projected exactly once: 1 + 300 tricks.
	eventually(t, 10*time.Second, "events counted", func() error {
		v, err := prom.scalar(`projector_events_processed_total{job="projector",projection="slow_tricks"}`)
		if err == nil && v != 301 {
			err = fmt.Errorf("projector_events_processed_total = %v, want 301", v)
		}
		return err
	})

	checkRules(t, prom)
	checkDashboardQueries(t, prom)
}

// checkRules checks that Prometheus loaded every rule of alerts.yml, that each evaluates
// without error, and that none fires against a healthy daemon.
func checkRules(t *testing.T, prom *promServer) {
	t.Helper()
	want, err := metricnames.RuleExprs("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every rule evaluated", func() error {
		_, body, err := httpGet(prom.base + "/api/v1/rules")
		if err != nil {
			return err
		}
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
						State     string `json:"state"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		seen := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if _, ok := want[rule.Name]; !ok {
					continue
				}
				seen++
				if rule.Health != "ok" {
					return fmt.Errorf("rule %s: health %q %s", rule.Name, rule.Health, rule.LastError)
				}
				if rule.State == "firing" {
					t.Errorf("alert %s fires against a healthy daemon", rule.Name)
				}
			}
		}
		if seen != len(want) {
			return fmt.Errorf("Prometheus loaded %d of the %d rules", seen, len(want))
		}
		return nil
	})
}

// checkDashboardQueries runs every query of the dashboard, with its variables set as Grafana
// would, and checks that each runs and that each (but the error rates of a daemon that had no
// error) returns data.
func checkDashboardQueries(t *testing.T, prom *promServer) {
	t.Helper()
	qs, err := metricnames.DashboardQueries("../prometheus/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("$__rate_interval", "30s", "$__range", "5m", "$job", "projector", "$projection", ".*")
	for _, q := range qs {
		expr := r.Replace(q.Expr)
		if strings.HasPrefix(expr, "label_values(") {
			// label_values(SELECTOR, LABEL): the selector must find series that have the label.
			inner := strings.TrimSuffix(strings.TrimPrefix(expr, "label_values("), ")")
			i := strings.LastIndex(inner, ",")
			expr = fmt.Sprintf("count by (%s) (%s)", strings.TrimSpace(inner[i+1:]), inner[:i])
		}
		res, err := prom.query(expr)
		if err != nil {
			t.Errorf("dashboard panel %q: %v", q.Panel, err)
			continue
		}
		if len(res) == 0 && !strings.Contains(expr, "projector_errors_total") {
			t.Errorf("dashboard panel %q: no data for %s", q.Panel, expr)
		}
	}
}
