// Package metricnames finds the Prometheus metric names that Projector's alert rules and
// Grafana dashboard use, and the metric families a /metrics page exposes, so tests can check
// that every name used is one the daemon really exports.
package metricnames

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Contract returns the metric names the daemon promises to export (besides the Go and process
// collectors), as the daemon's specification lists them.
func Contract() []string {
	return []string{
		"projector_events_processed_total",
		"projector_events_dead_lettered_total",
		"projector_batches_total",
		"projector_batch_duration_seconds",
		"projector_batch_events",
		"projector_position",
		"projector_head_position",
		"projector_lag_positions",
		"projector_lag_seconds",
		"projector_caught_up",
		"projector_leader",
		"projector_errors_total",
		"projector_subscription_restarts_total",
		"projector_last_progress_timestamp_seconds",
		"projector_wait_duration_seconds",
		"projector_dead_letters",
		"projector_parked_streams",
	}
}

var nameRE = regexp.MustCompile(`\bprojector_[a-z0-9_]+\b`)

// InExpr returns the projector_ metric names a PromQL expression mentions, sorted and
// deduplicated. Histogram series (_bucket, _sum, _count) are returned as written.
func InExpr(expr string) []string {
	return uniq(nameRE.FindAllString(expr, -1))
}

// RuleExprs returns the expression of every rule of a Prometheus rule file, keyed by the rule's
// alert or record name.
func RuleExprs(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rule file: %w", err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert  string `json:"alert"`
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("rule file %s: %w", path, err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for i, r := range g.Rules {
			name := r.Alert + r.Record
			if name == "" || r.Expr == "" {
				return nil, fmt.Errorf("rule file %s: group %s rule %d lacks a name or an expr", path, g.Name, i)
			}
			out[name] = r.Expr
		}
	}
	return out, nil
}

// InRules returns the projector_ metric names the rules of a Prometheus rule file use.
func InRules(path string) ([]string, error) {
	exprs, err := RuleExprs(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range exprs {
		names = append(names, InExpr(e)...)
	}
	return uniq(names), nil
}

// Query is one PromQL query of a dashboard.
type Query struct {
	// Panel is the title of the panel, or "variable NAME" for a template variable.
	Panel string
	// Expr is the query as written, with Grafana variables ($job, $__rate_interval) in it.
	Expr string
}

// DashboardQueries returns every PromQL query of a Grafana dashboard JSON file: the targets of
// its panels (rows' nested panels included) and the queries of its template variables.
func DashboardQueries(path string) ([]Query, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	type panel struct {
		Title   string            `json:"title"`
		Targets []json.RawMessage `json:"targets"`
		Panels  []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", path, err)
	}
	var out []Query
	var walk func(raw []json.RawMessage) error
	walk = func(raw []json.RawMessage) error {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				return fmt.Errorf("dashboard %s: panel: %w", path, err)
			}
			for _, tr := range p.Targets {
				var t struct {
					Expr string `json:"expr"`
				}
				if err := json.Unmarshal(tr, &t); err != nil {
					return fmt.Errorf("dashboard %s: panel %q: target: %w", path, p.Title, err)
				}
				if t.Expr == "" {
					return fmt.Errorf("dashboard %s: panel %q has a target without expr", path, p.Title)
				}
				out = append(out, Query{Panel: p.Title, Expr: t.Expr})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, Query{Panel: "variable " + v.Name, Expr: v.Definition})
		}
	}
	return out, nil
}

// InDashboard returns the projector_ metric names the queries of a Grafana dashboard use.
func InDashboard(path string) ([]string, error) {
	qs, err := DashboardQueries(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, q := range qs {
		names = append(names, InExpr(q.Expr)...)
	}
	return uniq(names), nil
}

// Exposed reads a Prometheus text exposition (a /metrics page) and returns its metric families
// with their types, from the "# TYPE" lines.
func Exposed(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// Missing returns the names that no exposed family provides. A histogram's or summary's
// _bucket, _sum and _count series count as provided by the family.
func Missing(names []string, exposed map[string]string) []string {
	var missing []string
	for _, n := range names {
		if _, ok := exposed[n]; ok {
			continue
		}
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(n, suffix)
			if !ok {
				continue
			}
			if t := exposed[base]; t == "histogram" || (t == "summary" && suffix != "_bucket") {
				found = true
			}
		}
		if !found {
			missing = append(missing, n)
		}
	}
	return missing
}

func uniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
