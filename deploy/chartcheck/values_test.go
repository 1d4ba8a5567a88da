package chartcheck

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

func TestMigrateDisabled(t *testing.T) {
	set := renderSet(t, Options{Values: map[string]any{"migrate": map[string]any{"enabled": false}}})
	pod := set.Deployments[0].Spec.Template.Spec
	if len(pod.InitContainers) != 0 || !slices.Equal(pod.Containers[0].Args, []string{"run"}) {
		t.Errorf("init containers %d, args %v: the daemon must migrate itself", len(pod.InitContainers), pod.Containers[0].Args)
	}
}

func TestInlineRootCertificates(t *testing.T) {
	set := renderSet(t, Options{ValuesFiles: []string{filepath.Join(chartDir, "ci", "tls-values.yaml")}})
	sec := secretNamed(t, set, "projector-connections")
	if !strings.Contains(sec.StringData["ca.crt"], "BEGIN CERTIFICATE") {
		t.Errorf("the chart's Secret lacks the PEM: %v", sec.StringData)
	}
	pod := set.Deployments[0].Spec.Template.Spec
	if *set.Deployments[0].Spec.Replicas != 3 || *pod.TerminationGracePeriodSeconds != 90 {
		t.Errorf("replicas %d, grace %d", *set.Deployments[0].Spec.Replicas, *pod.TerminationGracePeriodSeconds)
	}
	if got := envMap(pod.Containers[0])["PROJECTOR_DRAIN_TIMEOUT"].Value; got != "60s" {
		t.Errorf("drain %q", got)
	}
}

func TestMonitoring(t *testing.T) {
	set := renderSet(t, Options{ReleaseName: "views", ValuesFiles: []string{filepath.Join(chartDir, "ci", "monitoring-values.yaml")}})
	if len(set.ServiceMonitors) != 1 || len(set.PrometheusRules) != 1 {
		t.Fatalf("want a ServiceMonitor and a PrometheusRule, got %d and %d", len(set.ServiceMonitors), len(set.PrometheusRules))
	}
	sm := set.ServiceMonitors[0]
	if ep := sm.Spec.Endpoints[0]; ep.Path != "/metrics" || ep.Port != "http" || string(ep.Interval) != "15s" {
		t.Errorf("endpoint %+v", ep)
	}
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v", sm.Labels)
	}

	// The PrometheusRule carries exactly the rules of deploy/prometheus/alerts.yml, with the
	// ServiceMonitor's job name (the Service's name) in place of job="projector".
	b, err := os.ReadFile("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict([]byte(strings.ReplaceAll(string(b), `job="projector"`, `job="views-projector"`)), &want); err != nil {
		t.Fatalf("alerts.yml is not a valid rule spec: %v", err)
	}
	got := set.PrometheusRules[0].Spec
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PrometheusRule differs from alerts.yml:\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(got.Groups[0].Rules[len(got.Groups[0].Rules)-1].Expr.String(), `job="views-projector"`) {
		t.Error("the target-down rules do not use the ServiceMonitor's job name")
	}
}

func TestChartRulesAreTheAlertRules(t *testing.T) {
	a, err := os.ReadFile("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatal("deploy/helm/projector/files/alerts.yml differs from deploy/prometheus/alerts.yml; copy the latter over the former")
	}
}

// TestPodDisruptionBudget renders the budget only when it leaves a replica to evict: with
// minAvailable at or above replicaCount (replicaCount 0 or 1 with the default minAvailable 1)
// no eviction is ever allowed and `kubectl drain` hangs.
func TestPodDisruptionBudget(t *testing.T) {
	cases := []struct {
		name         string
		replicas     int
		minAvailable any // nil: the default, 1
		want         string
	}{
		{"no replicas", 0, nil, ""},
		{"one replica", 1, nil, ""},
		{"two replicas", 2, nil, "1"},
		{"every replica", 3, 3, ""},
		{"all but one", 3, 2, "2"},
		{"half of two", 2, "50%", "50%"},
		{"half of one rounds up to one", 1, "50%", ""},
		{"all of four", 4, "100%", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vals := map[string]any{"replicaCount": tc.replicas}
			if tc.minAvailable != nil {
				vals["podDisruptionBudget"] = map[string]any{"minAvailable": tc.minAvailable}
			}
			set := renderSet(t, Options{Values: vals})
			if tc.want == "" {
				if len(set.PodDisruptionBudgets) != 0 {
					t.Fatalf("rendered a PodDisruptionBudget with minAvailable %s for %d replicas", set.PodDisruptionBudgets[0].Spec.MinAvailable.String(), tc.replicas)
				}
				return
			}
			if len(set.PodDisruptionBudgets) != 1 {
				t.Fatalf("want one PodDisruptionBudget, got %d", len(set.PodDisruptionBudgets))
			}
			if got := set.PodDisruptionBudgets[0].Spec.MinAvailable.String(); got != tc.want {
				t.Errorf("minAvailable %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"misspelt key", map[string]any{"replicas": 3}, "replicas"},
		{"misspelt nested key", map[string]any{"database": map[string]any{"existingSecretName": "x"}}, "existingSecretName"},
		{"bad log format", map[string]any{"log": map[string]any{"format": "text"}}, "/log/format"},
		{"grace below drain", map[string]any{"drainTimeoutSeconds": 30, "terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds (20) must be larger than drainTimeoutSeconds (30)"},
		{"no kurrentdb", map[string]any{"kurrentdb": map[string]any{"uri": ""}}, "kurrentdb: set uri or existingSecret"},
		{"no database", map[string]any{"database": map[string]any{"url": ""}}, "database: set url or existingSecret"},
		{"no projections", map[string]any{"projections": map[string]any{"config": ""}}, "projections: set config"},
		{"two root certificate sources", map[string]any{"kurrentdb": map[string]any{"rootCertificates": "PEM", "rootCertificatesSecret": "ca"}}, "not both"},
		{"admin token value and existing Secret", map[string]any{"adminToken": map[string]any{"value": "t0ken", "existingSecret": "admin"}}, "adminToken: set value or existingSecret, not both"},
		{"admin token with a space", map[string]any{"adminToken": map[string]any{"value": "two words"}}, "/adminToken/value"},
		{"admin token only whitespace", map[string]any{"adminToken": map[string]any{"value": " \n"}}, "adminToken.value is only whitespace"},
		{"admin token also in extraEnv", map[string]any{"adminToken": map[string]any{"existingSecret": "admin"}, "extraEnv": []any{map[string]any{"name": "PROJECTOR_ADMIN_TOKEN", "value": "x"}}}, "extraEnv sets PROJECTOR_ADMIN_TOKEN although adminToken gives the admin token"},
		{"admin token key not a Secret key", map[string]any{"adminToken": map[string]any{"existingSecret": "admin", "existingSecretKey": "a/b"}}, "/adminToken/existingSecretKey"},
		{"minAvailable neither count nor percentage", map[string]any{"podDisruptionBudget": map[string]any{"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(chartDir, Options{Values: tc.values})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestStrictDecodingRejectsMistakes(t *testing.T) {
	ms, err := Render(chartDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var dep Manifest
	for _, m := range ms {
		if strings.HasSuffix(m.Source, "deployment.yaml") {
			dep = m
		}
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown field", "  replicas: 2", "  replica: 2", `unknown field "spec.replica"`},
		{"misspelt nested field", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "readOnlyRootFileSystem"},
		{"wrong type", "  replicas: 2", "  replicas: two", "replicas"},
		{"duplicate key", "  replicas: 2", "  replicas: 2\n  replicas: 3", "replicas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(dep.Content, tc.old) {
				t.Fatalf("rendered Deployment lacks %q", tc.old)
			}
			bad := Manifest{Source: dep.Source, Content: strings.Replace(dep.Content, tc.old, tc.new, 1)}
			_, err := Decode(bad)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `Deployment "projector"`) {
				t.Fatalf("err = %v, want one naming the Deployment and %q", err, tc.want)
			}
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		_, err := Decode(Manifest{Source: "x.yaml", Content: "apiVersion: v1\nkind: Pdo\nmetadata:\n  name: a\n"})
		if err == nil || !strings.Contains(err.Error(), "unsupported apiVersion/kind") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("misspelt ServiceMonitor field", func(t *testing.T) {
		sm := "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: a\nspec:\n  selector: {}\n  endpoints:\n    - port: http\n      intervall: 10s\n"
		_, err := Decode(Manifest{Source: "sm.yaml", Content: sm})
		if err == nil || !strings.Contains(err.Error(), "intervall") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCheckFindsInconsistencies(t *testing.T) {
	ms, err := Render(chartDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"probe on an undeclared port", "port: http\n            failureThreshold: 3\n            initialDelaySeconds", "port: metrics\n            failureThreshold: 3\n            initialDelaySeconds", "livenessProbe aims at port metrics"},
		{"mount of an undeclared volume", "- name: tmp\n              mountPath: /tmp", "- name: scratch\n              mountPath: /tmp", "mounts undeclared volume scratch"},
		{"missing secret key", "key: database-url", "key: database_url", "Secret projector-connections has no key database_url"},
		{"grace period below drain", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 10", "not above PROJECTOR_DRAIN_TIMEOUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var edited []Manifest
			found := false
			for _, m := range ms {
				if strings.HasSuffix(m.Source, "deployment.yaml") && strings.Contains(m.Content, tc.old) {
					m.Content = strings.Replace(m.Content, tc.old, tc.new, 1)
					found = true
				}
				edited = append(edited, m)
			}
			if !found {
				t.Fatalf("rendered Deployment lacks %q", tc.old)
			}
			set, err := DecodeAll(edited)
			if err != nil {
				t.Fatal(err)
			}
			if err := set.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("budget allowing no eviction", func(t *testing.T) {
		var edited []Manifest
		found := false
		for _, m := range ms {
			if strings.HasSuffix(m.Source, "pdb.yaml") && strings.Contains(m.Content, "minAvailable: 1\n") {
				m.Content = strings.Replace(m.Content, "minAvailable: 1\n", "minAvailable: 2\n", 1)
				found = true
			}
			edited = append(edited, m)
		}
		if !found {
			t.Fatal("rendered PodDisruptionBudget lacks minAvailable: 1")
		}
		set, err := DecodeAll(edited)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Check(); err == nil || !strings.Contains(err.Error(), "minAvailable 2 of the 2 replicas of Deployment projector allows no eviction") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("service selecting nothing", func(t *testing.T) {
		var edited []Manifest
		for _, m := range ms {
			if strings.HasSuffix(m.Source, "service.yaml") {
				m.Content = strings.Replace(m.Content, "app.kubernetes.io/instance: projector\n  ports", "app.kubernetes.io/instance: other\n  ports", 1)
			}
			edited = append(edited, m)
		}
		set, err := DecodeAll(edited)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Check(); err == nil || !strings.Contains(err.Error(), "selects no pod") {
			t.Fatalf("err = %v", err)
		}
	})
}
