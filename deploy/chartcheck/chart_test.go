package chartcheck

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

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

// modeString prints a volume's file mode in octal, or "unset".
func modeString(m *int32) string {
	if m == nil {
		return "unset"
	}
	return fmt.Sprintf("%#o", *m)
}
