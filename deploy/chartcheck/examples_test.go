package chartcheck

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
)

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
