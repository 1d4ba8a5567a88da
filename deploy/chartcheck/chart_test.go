package chartcheck

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "../helm/projector"

// valuesCases are the default values and every example values file of the chart.
func valuesCases(t *testing.T) map[string]Options {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("expected at least 3 example values files in %s/ci, found %d", chartDir, len(files))
	}
	cases := map[string]Options{"default": {}}
	for _, f := range files {
		cases[filepath.Base(f)] = Options{ValuesFiles: []string{f}}
	}
	return cases
}

func renderSet(t *testing.T, opts Options) *Set {
	t.Helper()
	ms, err := Render(chartDir, opts)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	set, err := DecodeAll(ms)
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	if err := set.Check(); err != nil {
		t.Fatalf("check:\n%v", err)
	}
	return set
}

func TestLint(t *testing.T) {
	for name, opts := range valuesCases(t) {
		t.Run(name, func(t *testing.T) {
			if err := Lint(chartDir, opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTemplateStrict(t *testing.T) {
	for name, opts := range valuesCases(t) {
		t.Run(name, func(t *testing.T) {
			set := renderSet(t, opts)
			if len(set.Deployments) != 1 || len(set.Services) != 1 {
				t.Fatalf("want one Deployment and one Service, got %d and %d", len(set.Deployments), len(set.Services))
			}
			d := set.Deployments[0]
			for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
				if err := CheckHardened(&d.Spec.Template.Spec, c); err != nil {
					t.Error(err)
				}
			}
			if d.Spec.Template.Spec.AutomountServiceAccountToken == nil || *d.Spec.Template.Spec.AutomountServiceAccountToken {
				t.Error("the pod mounts a service account token it never uses")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	set := renderSet(t, Options{ReleaseName: "views", Namespace: "shop"})
	d := set.Deployments[0]
	if d.Name != "views-projector" {
		t.Errorf("Deployment name = %q", d.Name)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2 (a leader and a hot standby)", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
		t.Fatalf("want the daemon and the migrate init container, got %d containers and %d init containers", len(pod.Containers), len(pod.InitContainers))
	}
	c, mig := pod.Containers[0], pod.InitContainers[0]
	if !reflect.DeepEqual(c.Args, []string{"run", "--no-migrate"}) || !reflect.DeepEqual(mig.Args, []string{"migrate"}) {
		t.Errorf("args: daemon %v, init %v", c.Args, mig.Args)
	}
	if c.Image != "projector-dev/projector:0.1.0" {
		t.Errorf("image %q, want the chart's appVersion as tag", c.Image)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.StartupProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: liveness %s, readiness %s, startup %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, c.StartupProbe.HTTPGet.Path)
	}
	env := envMap(c)
	for _, name := range []string{"KURRENTDB_URI", "DATABASE_URL", "PROJECTOR_CONFIG", "PROJECTOR_HTTP_ADDR", "PROJECTOR_LOG_LEVEL", "PROJECTOR_LOG_FORMAT", "PROJECTOR_DRAIN_TIMEOUT"} {
		if _, ok := env[name]; !ok {
			t.Errorf("daemon env lacks %s", name)
		}
	}
	if _, ok := env["KURRENTDB_ROOT_CERTIFICATES"]; ok {
		t.Error("KURRENTDB_ROOT_CERTIFICATES set although no certificates are configured")
	}
	withoutToken := maps.Clone(env)
	delete(withoutToken, "PROJECTOR_ADMIN_TOKEN_FILE")
	if !reflect.DeepEqual(envMap(mig), withoutToken) {
		t.Error("the migrate init container's environment differs from the daemon's (but for the admin token)")
	}
	// Commands are closed by default: the chart creates a Secret with a random admin token, which
	// only the daemon gets.
	secret, key := adminTokenSource(t, pod, c)
	if tok := secretNamed(t, set, "views-projector-admin-token").StringData["token"]; secret != "views-projector-admin-token" || key != "token" || !randomToken.MatchString(tok) {
		t.Errorf("admin token from %s/%s, holding %q; want the chart's Secret with a random token", secret, key, tok)
	}
	noAdminToken(t, mig)
	if env["PROJECTOR_HTTP_ADDR"].Value != ":9090" || env["PROJECTOR_DRAIN_TIMEOUT"].Value != "30s" {
		t.Errorf("http addr %q, drain %q", env["PROJECTOR_HTTP_ADDR"].Value, env["PROJECTOR_DRAIN_TIMEOUT"].Value)
	}
	if *pod.TerminationGracePeriodSeconds != 45 {
		t.Errorf("terminationGracePeriodSeconds = %d, want drain (30) + 15", *pod.TerminationGracePeriodSeconds)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Error("a rolling update may take the standby down before its replacement is up")
	}

	// The projections YAML reaches the daemon through the ConfigMap at PROJECTOR_CONFIG.
	if len(set.ConfigMaps) != 1 {
		t.Fatalf("want one ConfigMap, got %d", len(set.ConfigMaps))
	}
	cm := set.ConfigMaps[0]
	var cfg struct {
		Projections []struct {
			Name     string            `json:"name"`
			Handlers map[string]string `json:"handlers"`
		} `json:"projections"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["projections.yaml"]), &cfg); err != nil {
		t.Fatalf("projections YAML in the ConfigMap: %v", err)
	}
	if len(cfg.Projections) != 1 || cfg.Projections[0].Name != "dog_counts" || len(cfg.Projections[0].Handlers) != 2 {
		t.Errorf("projections: %+v", cfg.Projections)
	}
	mountDir := ""
	for _, m := range c.VolumeMounts {
		if m.Name == "config" {
			mountDir = m.MountPath
		}
	}
	if env["PROJECTOR_CONFIG"].Value != mountDir+"/projections.yaml" {
		t.Errorf("PROJECTOR_CONFIG %q is not the mounted ConfigMap key under %q", env["PROJECTOR_CONFIG"].Value, mountDir)
	}

	// Connection strings from values go into the chart's Secret, never into the pod spec.
	if len(set.Secrets) != 2 {
		t.Fatalf("want two Secrets (connections, admin token), got %d", len(set.Secrets))
	}
	sec := secretNamed(t, set, "views-projector-connections")
	if ref := env["KURRENTDB_URI"].ValueFrom.SecretKeyRef; ref.Name != sec.Name || sec.StringData[ref.Key] != "kurrentdb://kurrentdb:2113?tls=false" {
		t.Errorf("KURRENTDB_URI from %s/%s", ref.Name, ref.Key)
	}
	if ref := env["DATABASE_URL"].ValueFrom.SecretKeyRef; ref.Name != sec.Name || !strings.HasPrefix(sec.StringData[ref.Key], "postgres://") {
		t.Errorf("DATABASE_URL from %s/%s", ref.Name, ref.Key)
	}

	if len(set.PodDisruptionBudgets) != 1 || set.PodDisruptionBudgets[0].Spec.MinAvailable.IntValue() != 1 {
		t.Error("want a PodDisruptionBudget keeping one replica")
	}
	if svc := set.Services[0]; svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].Name != "http" {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
	if len(set.ServiceMonitors)+len(set.PrometheusRules) != 0 {
		t.Error("Prometheus Operator objects rendered although not enabled")
	}
	if len(pod.TopologySpreadConstraints) != 1 {
		t.Error("replicas are not spread over nodes")
	}
}

func TestExistingObjects(t *testing.T) {
	set := renderSet(t, Options{ValuesFiles: []string{filepath.Join(chartDir, "ci", "existing-secrets-values.yaml")}})
	if len(set.Secrets)+len(set.ConfigMaps)+len(set.ServiceAccounts) != 0 {
		t.Fatalf("rendered %d Secrets, %d ConfigMaps and %d ServiceAccounts although all exist already", len(set.Secrets), len(set.ConfigMaps), len(set.ServiceAccounts))
	}
	pod := set.Deployments[0].Spec.Template.Spec
	c := pod.Containers[0]
	env := envMap(c)
	if ref := env["KURRENTDB_URI"].ValueFrom.SecretKeyRef; ref.Name != "kurrentdb-credentials" || ref.Key != "connection-string" {
		t.Errorf("KURRENTDB_URI from %s/%s", ref.Name, ref.Key)
	}
	if ref := env["DATABASE_URL"].ValueFrom.SecretKeyRef; ref.Name != "orders-db" || ref.Key != "DATABASE_URL" {
		t.Errorf("DATABASE_URL from %s/%s", ref.Name, ref.Key)
	}
	if env["KURRENTDB_ROOT_CERTIFICATES"].Value != "/etc/projector/certs/ca.crt" {
		t.Errorf("KURRENTDB_ROOT_CERTIFICATES = %q", env["KURRENTDB_ROOT_CERTIFICATES"].Value)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if v := vols["certs"]; v.Secret == nil || v.Secret.SecretName != "kurrentdb-ca" || v.Secret.Items[0].Path != "ca.crt" {
		t.Errorf("certs volume %+v", v)
	}
	if v := vols["config"]; v.ConfigMap == nil || v.ConfigMap.Name != "orders-projections" {
		t.Errorf("config volume %+v", v)
	}
	if c.Image != "registry.example.com/platform/projector:1.2.3" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
	}
	if len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "registry-credentials" {
		t.Errorf("imagePullSecrets %+v", pod.ImagePullSecrets)
	}
	if pod.ServiceAccountName != "orders-projector" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
}

// adminTokenSource checks that the container takes the admin token from a file, never from a
// value in the pod spec: PROJECTOR_ADMIN_TOKEN is unset and PROJECTOR_ADMIN_TOKEN_FILE names a
// file inside a read-only mount of a Secret volume that others cannot read. It returns the
// Secret and the key the file holds.
func adminTokenSource(t *testing.T, pod corev1.PodSpec, c corev1.Container) (secret, key string) {
	t.Helper()
	env := envMap(c)
	if _, ok := env["PROJECTOR_ADMIN_TOKEN"]; ok {
		t.Errorf("container %s: PROJECTOR_ADMIN_TOKEN is set; the token must come from a file", c.Name)
	}
	e, ok := env["PROJECTOR_ADMIN_TOKEN_FILE"]
	if !ok || e.ValueFrom != nil || !strings.HasPrefix(e.Value, "/") {
		t.Fatalf("container %s: PROJECTOR_ADMIN_TOKEN_FILE = %+v, want an absolute path", c.Name, e)
	}
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(e.Value, strings.TrimSuffix(m.MountPath, "/")+"/") {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("container %s: PROJECTOR_ADMIN_TOKEN_FILE %s lies in no volume mount", c.Name, e.Value)
	}
	if !mount.ReadOnly {
		t.Errorf("container %s: the admin token's mount %s is writable", c.Name, mount.MountPath)
	}
	rel := strings.TrimPrefix(e.Value, strings.TrimSuffix(mount.MountPath, "/")+"/")
	for _, v := range pod.Volumes {
		if v.Name != mount.Name {
			continue
		}
		if v.Secret == nil {
			t.Fatalf("volume %s holding the admin token is not a Secret: %+v", v.Name, v.VolumeSource)
		}
		if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
			t.Errorf("volume %s: defaultMode %s lets every user of the pod read the admin token", v.Name, modeString(v.Secret.DefaultMode))
		}
		for _, it := range v.Secret.Items {
			if it.Path == rel {
				return v.Secret.SecretName, it.Key
			}
		}
		t.Fatalf("volume %s: no item of Secret %s has path %s", v.Name, v.Secret.SecretName, rel)
	}
	t.Fatalf("container %s mounts undeclared volume %s", c.Name, mount.Name)
	return "", ""
}

// noAdminToken checks that the container neither gets the admin token nor mounts its volume.
func noAdminToken(t *testing.T, c corev1.Container) {
	t.Helper()
	for name := range envMap(c) {
		if strings.HasPrefix(name, "PROJECTOR_ADMIN_TOKEN") {
			t.Errorf("container %s gets %s", c.Name, name)
		}
	}
	for _, m := range c.VolumeMounts {
		if strings.Contains(m.Name, "admin") {
			t.Errorf("container %s mounts the admin token's volume %s", c.Name, m.Name)
		}
	}
}

func TestAdminTokenExistingSecret(t *testing.T) {
	set := renderSet(t, Options{ValuesFiles: []string{filepath.Join(chartDir, "ci", "admin-token-values.yaml")}})
	if len(set.Secrets) != 0 {
		t.Errorf("rendered %d Secrets although the admin token and the connections exist already", len(set.Secrets))
	}
	pod := set.Deployments[0].Spec.Template.Spec
	secret, key := adminTokenSource(t, pod, pod.Containers[0])
	if secret != "orders-projector-admin" || key != "admin-token" {
		t.Errorf("admin token from %s/%s, want orders-projector-admin/admin-token", secret, key)
	}
	noAdminToken(t, pod.InitContainers[0])
}

func TestAdminTokenValue(t *testing.T) {
	const token = "0f3a9c2e7b15d4a8"
	ms, err := Render(chartDir, Options{ReleaseName: "views", Values: map[string]any{"adminToken": map[string]any{"value": token + "\n"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if strings.HasSuffix(m.Source, "deployment.yaml") && strings.Contains(m.Content, token) {
			t.Errorf("the admin token appears in the Deployment:\n%s", m.Content)
		}
	}
	set, err := DecodeAll(ms)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Check(); err != nil {
		t.Fatal(err)
	}
	var created *corev1.Secret
	for _, s := range set.Secrets {
		if s.Name == "views-projector-admin-token" {
			created = s
		}
	}
	if created == nil {
		t.Fatalf("no Secret views-projector-admin-token among %d Secrets", len(set.Secrets))
	}
	d := set.Deployments[0]
	pod := d.Spec.Template.Spec
	secret, key := adminTokenSource(t, pod, pod.Containers[0])
	if secret != created.Name || created.StringData[key] != token {
		t.Errorf("admin token from %s/%s; the chart's Secret %s holds %v", secret, key, created.Name, created.StringData)
	}
	noAdminToken(t, pod.InitContainers[0])
	if d.Spec.Template.Annotations["checksum/admin-token"] == "" {
		t.Error("no checksum/admin-token annotation: changing adminToken.value would not restart the pods")
	}
}

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

func TestNotes(t *testing.T) {
	notes, err := Notes(chartDir, Options{ReleaseName: "views", Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl -n shop rollout status deployment/views-projector",
		"port-forward service/views-projector 9090:9090",
		"/readyz",
		"/v1/projections",
		"projector_lag_seconds",
		"http://views-projector.shop.svc:9090/v1/projections/NAME/wait",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
	for _, want := range []string{
		"exec \"$pod\" -c projector -- /projector resume NAME",
		"Secret views-projector-admin-token (key token), which the chart created with a random token, kept across upgrades",
		"kubectl -n shop get secret views-projector-admin-token -o jsonpath='{.data.token}' | base64 -d",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt with the chart's random admin token lacks %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "WARNING") {
		t.Errorf("NOTES.txt warns although the commands are closed:\n%s", notes)
	}

	notes, err = Notes(chartDir, Options{ReleaseName: "views", Namespace: "shop", ValuesFiles: []string{filepath.Join(chartDir, "ci", "admin-token-values.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Secret orders-projector-admin (key admin-token)",
		"kubectl -n shop get pods -l app.kubernetes.io/name=projector,app.kubernetes.io/instance=views -o name",
		"kubectl -n shop exec \"$pod\" -c projector -- /projector resume NAME",
		"get secret orders-projector-admin -o jsonpath='{.data.admin-token}' | base64 -d",
		"projector skip NAME --server http://localhost:9090",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt with an admin token lacks %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "WARNING: no admin token") {
		t.Errorf("NOTES.txt warns of a missing admin token although one is set:\n%s", notes)
	}
}

// TestSidecarExample checks the sidecar example strictly and against the chart: the projector
// containers carry the same environment variables, probes and hardening as the chart's daemon,
// and the application reaches the daemon on localhost.
func TestSidecarExample(t *testing.T) {
	b, err := os.ReadFile("../sidecar/orders-api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ms []Manifest
	for _, doc := range strings.Split(string(b), "\n---\n") {
		ms = append(ms, Manifest{Source: "sidecar/orders-api.yaml", Content: doc})
	}
	set, err := DecodeAll(ms)
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	if err := set.Check(); err != nil {
		t.Fatalf("check:\n%v", err)
	}
	if len(set.Deployments) != 1 || len(set.ConfigMaps) != 1 {
		t.Fatalf("want a Deployment and a ConfigMap, got %d and %d", len(set.Deployments), len(set.ConfigMaps))
	}
	pod := set.Deployments[0].Spec.Template.Spec
	var sidecar, migrate *corev1.Container
	for i, c := range pod.InitContainers {
		switch {
		case c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways:
			sidecar = &pod.InitContainers[i]
		case slices.Equal(c.Args, []string{"migrate"}):
			migrate = &pod.InitContainers[i]
		}
	}
	if sidecar == nil || migrate == nil {
		t.Fatal("want a native sidecar (restartPolicy Always) and a migrate init container")
	}
	if !slices.Equal(sidecar.Args, []string{"run", "--no-migrate"}) {
		t.Errorf("sidecar args %v", sidecar.Args)
	}
	if pod.InitContainers[0].Name != migrate.Name {
		t.Error("migrate must run before the sidecar starts")
	}
	for _, c := range []*corev1.Container{sidecar, migrate} {
		if err := CheckHardened(&pod, *c); err != nil {
			t.Error(err)
		}
	}

	// The chart with an admin token from an existing Secret, as the example has.
	chartPod := renderSet(t, Options{Values: map[string]any{"adminToken": map[string]any{"existingSecret": "orders-projector-admin"}}}).Deployments[0].Spec.Template.Spec
	chart := chartPod.Containers[0]
	want := sortedKeys(envMap(chart))
	if got := sortedKeys(envMap(*sidecar)); !slices.Equal(got, want) {
		t.Errorf("sidecar env %v, chart env %v", got, want)
	}
	migWant := sortedKeys(envMap(chartPod.InitContainers[0]))
	if got := sortedKeys(envMap(*migrate)); !slices.Equal(got, migWant) {
		t.Errorf("migrate env %v, chart's migrate env %v", got, migWant)
	}
	secret, key := adminTokenSource(t, pod, *sidecar)
	if secret != "orders-projector-admin" || key != "token" {
		t.Errorf("sidecar admin token from %s/%s, want orders-projector-admin/token", secret, key)
	}
	noAdminToken(t, *migrate)
	for _, c := range pod.Containers {
		noAdminToken(t, c)
	}
	for name, e := range envMap(*migrate) {
		if !reflect.DeepEqual(envMap(*sidecar)[name], e) {
			t.Errorf("env %s: migrate %+v, sidecar %+v", name, e, envMap(*sidecar)[name])
		}
	}
	probePath := func(p *corev1.Probe) string {
		if p == nil || p.HTTPGet == nil {
			return ""
		}
		return p.HTTPGet.Path
	}
	for _, pair := range [][2]*corev1.Probe{{sidecar.StartupProbe, chart.StartupProbe}, {sidecar.LivenessProbe, chart.LivenessProbe}} {
		if probePath(pair[0]) != probePath(pair[1]) {
			t.Errorf("sidecar probe %q, chart probe %q", probePath(pair[0]), probePath(pair[1]))
		}
	}
	// The sidecar's readiness is the application pod's: it must not follow /readyz, which fails
	// on a KurrentDB or PostgreSQL outage or a stopped projection and would take every replica
	// of the application out of its Service. Only liveness (/healthz) or no probe at all.
	if p := probePath(sidecar.ReadinessProbe); sidecar.ReadinessProbe != nil && p != "/healthz" {
		t.Errorf("sidecar readiness probe %q: want /healthz or none", p)
	}
	if !reflect.DeepEqual(sidecar.SecurityContext, chart.SecurityContext) {
		t.Errorf("sidecar securityContext %+v differs from the chart's %+v", sidecar.SecurityContext, chart.SecurityContext)
	}

	env := envMap(*sidecar)
	drain, err := time.ParseDuration(env["PROJECTOR_DRAIN_TIMEOUT"].Value)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= drain {
		t.Error("terminationGracePeriodSeconds is not above the drain timeout")
	}
	port := sidecar.Ports[0].ContainerPort
	if env["PROJECTOR_HTTP_ADDR"].Value != ":9090" || port != 9090 {
		t.Errorf("sidecar listens on %q, declares port %d", env["PROJECTOR_HTTP_ADDR"].Value, port)
	}
	app := pod.Containers[0]
	if envMap(app)["PROJECTOR_URL"].Value != "http://localhost:9090" {
		t.Errorf("the application does not reach the sidecar on localhost: %+v", app.Env)
	}
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestDocsInstall renders the chart with the `helm install` command of the deployment guide
// (docs/deployment.md) and checks that the names the guide then uses (deployment, service) are
// the ones rendered.
func TestDocsInstall(t *testing.T) {
	b, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	guide := string(b)
	i := strings.Index(guide, "helm install ")
	if i < 0 {
		t.Fatal("docs/deployment.md has no helm install command")
	}
	cmd := guide[i:]
	cmd = cmd[:strings.Index(cmd, "\n```")]
	cmd = strings.ReplaceAll(cmd, "\\\n", " ")
	args := strings.Fields(cmd)
	if len(args) < 4 || args[3] != "deploy/helm/projector" {
		t.Fatalf("unexpected install command %q", cmd)
	}
	release := args[2]
	vals := map[string]any{}
	for j := 4; j < len(args); j++ {
		if args[j] != "--set" || j+1 == len(args) {
			t.Fatalf("unexpected argument %q in %q", args[j], cmd)
		}
		j++
		if err := strvals.ParseInto(args[j], vals); err != nil {
			t.Fatalf("--set %s: %v", args[j], err)
		}
	}
	set := renderSet(t, Options{ReleaseName: release, Values: vals})
	d := set.Deployments[0]
	if len(set.Secrets) != 0 || len(set.ConfigMaps) != 0 {
		t.Errorf("the guide's install still renders %d Secrets and %d ConfigMaps", len(set.Secrets), len(set.ConfigMaps))
	}
	for _, want := range []string{"deployment/" + d.Name, "service/" + set.Services[0].Name} {
		if !strings.Contains(guide, want) {
			t.Errorf("docs/deployment.md does not use %s", want)
		}
	}
	env := envMap(d.Spec.Template.Spec.Containers[0])
	if ref := env["KURRENTDB_URI"].ValueFrom.SecretKeyRef; ref.Name != "projector-connections" || !strings.Contains(guide, "--from-literal="+ref.Key+"=") {
		t.Errorf("KURRENTDB_URI from %s/%s, which the guide's kubectl create secret does not make", ref.Name, ref.Key)
	}
	if ref := env["DATABASE_URL"].ValueFrom.SecretKeyRef; ref.Name != "projector-connections" || !strings.Contains(guide, "--from-literal="+ref.Key+"=") {
		t.Errorf("DATABASE_URL from %s/%s, which the guide's kubectl create secret does not make", ref.Name, ref.Key)
	}
	// The guide installs with an admin token, from a Secret it creates, and its commands for
	// resume and skip read that Secret.
	pod := d.Spec.Template.Spec
	secret, key := adminTokenSource(t, pod, pod.Containers[0])
	if !strings.Contains(guide, "kubectl create secret generic "+secret+" --from-literal="+key+"=") {
		t.Errorf("the admin token comes from %s/%s, which the guide's kubectl create secret does not make", secret, key)
	}
	if !strings.Contains(guide, "kubectl get secret "+secret+" -o jsonpath='{.data."+key+"}'") {
		t.Errorf("the guide does not read the admin token from %s/%s", secret, key)
	}
}

// modeString prints a volume's file mode in octal, or "unset".
func modeString(m *int32) string {
	if m == nil {
		return "unset"
	}
	return fmt.Sprintf("%#o", *m)
}
