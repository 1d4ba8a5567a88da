package metricnames

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

const (
	rulesFile     = "../prometheus/alerts.yml"
	dashboardFile = "../prometheus/dashboard.json"
)

// contractTypes is the contract with the types the daemon's specification gives the metrics.
func contractTypes() map[string]string {
	out := map[string]string{}
	for _, n := range Contract() {
		switch {
		case strings.HasSuffix(n, "_total"):
			out[n] = "counter"
		case n == "projector_batch_duration_seconds" || n == "projector_batch_events" || n == "projector_wait_duration_seconds":
			out[n] = "histogram"
		default:
			out[n] = "gauge"
		}
	}
	return out
}

func TestRulesUseOnlyContractNames(t *testing.T) {
	names, err := InRules(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 5 {
		t.Fatalf("found only %v in the rules", names)
	}
	if m := Missing(names, contractTypes()); len(m) > 0 {
		t.Fatalf("alerts.yml uses metrics the daemon does not promise: %v", m)
	}
}

func TestDashboardUsesOnlyContractNames(t *testing.T) {
	names, err := InDashboard(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if m := Missing(names, contractTypes()); len(m) > 0 {
		t.Fatalf("dashboard.json uses metrics the daemon does not promise: %v", m)
	}
	// The dashboard shows lag in seconds and positions, throughput, batch latency, errors,
	// leadership and caught-up.
	for _, want := range []string{
		"projector_lag_seconds", "projector_lag_positions", "projector_position", "projector_head_position",
		"projector_events_processed_total", "projector_batch_duration_seconds_bucket",
		"projector_errors_total", "projector_leader", "projector_caught_up",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("dashboard.json has no query on %s", want)
		}
	}
}

func TestDashboardShape(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard lacks a uid or a title")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"datasource", "job", "projection"} {
		if !slices.Contains(vars, want) {
			t.Errorf("no template variable %s", want)
		}
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: missing or repeated refId %q", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.Contains(tg.Expr, "projector_") && !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: query ignores the job variable: %s", p.Title, tg.Expr)
			}
		}
	}
}

func TestExposedAndMissing(t *testing.T) {
	page := `# HELP projector_batch_duration_seconds Batch duration.
# TYPE projector_batch_duration_seconds histogram
projector_batch_duration_seconds_bucket{projection="a",le="0.1"} 1
projector_batch_duration_seconds_sum{projection="a"} 0.05
projector_batch_duration_seconds_count{projection="a"} 1
# HELP projector_position Position.
# TYPE projector_position gauge
projector_position{projection="a"} 42
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds_sum 0
`
	exposed, err := Exposed(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"projector_batch_duration_seconds": "histogram", "projector_position": "gauge", "go_gc_duration_seconds": "summary"}
	if fmt.Sprint(exposed) != fmt.Sprint(want) {
		t.Fatalf("exposed %v, want %v", exposed, want)
	}
	got := Missing([]string{
		"projector_batch_duration_seconds_bucket", "projector_batch_duration_seconds_count",
		"projector_position", "projector_position_bucket", "projector_lag_seconds",
		"go_gc_duration_seconds_sum", "go_gc_duration_seconds_bucket",
	}, exposed)
	if !slices.Equal(got, []string{"projector_position_bucket", "projector_lag_seconds", "go_gc_duration_seconds_bucket"}) {
		t.Fatalf("missing %v", got)
	}
}

func TestRuleExprsRejectsNamelessRule(t *testing.T) {
	f := t.TempDir() + "/rules.yml"
	if err := os.WriteFile(f, []byte("groups:\n  - name: g\n    rules:\n      - expr: up == 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RuleExprs(f); err == nil || !strings.Contains(err.Error(), "group g rule 0 lacks a name") {
		t.Fatalf("err = %v", err)
	}
}

func ExampleInExpr() {
	fmt.Println(InExpr(`histogram_quantile(0.99, sum by (le) (rate(projector_batch_duration_seconds_bucket[5m])))
  and on (projection) projector_leader == 1 and projector_leader > 0`))
	// Output: [projector_batch_duration_seconds_bucket projector_leader]
}
