package chartcheck

import (
	"encoding/base64"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// randomToken matches the token the chart generates.
var randomToken = regexp.MustCompile(`^[A-Za-z0-9]{48}$`)

// secretNamed returns the rendered Secret name.
func secretNamed(t *testing.T, set *Set, name string) *corev1.Secret {
	t.Helper()
	for _, s := range set.Secrets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Secret %s among %d Secrets", name, len(set.Secrets))
	return nil
}

// Without a token in the values, each install gets its own random token, and an upgrade keeps
// the token of the Secret the install created (read back with lookup); the token is never in
// the Deployment.
func TestAdminTokenGenerated(t *testing.T) {
	token := func(opts Options) string {
		t.Helper()
		opts.ReleaseName = "views"
		ms, err := Render(chartDir, opts)
		if err != nil {
			t.Fatal(err)
		}
		set, err := DecodeAll(ms)
		if err != nil {
			t.Fatal(err)
		}
		tok := secretNamed(t, set, "views-projector-admin-token").StringData["token"]
		for _, m := range ms {
			if strings.HasSuffix(m.Source, "deployment.yaml") && strings.Contains(m.Content, tok) {
				t.Errorf("the admin token appears in the Deployment:\n%s", m.Content)
			}
		}
		return tok
	}
	first, second := token(Options{}), token(Options{})
	if !randomToken.MatchString(first) || !randomToken.MatchString(second) || first == second {
		t.Errorf("generated tokens %q and %q: want two different random 48-character tokens", first, second)
	}
	installed := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "views-projector-admin-token", "namespace": "default"},
		"data":     map[string]any{"token": base64.StdEncoding.EncodeToString([]byte(first))},
	}}
	other := installed.DeepCopy()
	other.SetName("other-admin-token")
	if got := token(Options{Existing: []*unstructured.Unstructured{other, installed}}); got != first {
		t.Errorf("upgrade: token %q, want the installed %q kept", got, first)
	}
	if got := token(Options{Existing: []*unstructured.Unstructured{other}}); got == first || !randomToken.MatchString(got) {
		t.Errorf("install beside another Secret: token %q", got)
	}
	// A value given on upgrade replaces the installed token.
	if got := token(Options{Existing: []*unstructured.Unstructured{installed}, Values: map[string]any{"adminToken": map[string]any{"value": "chosen-token"}}}); got != "chosen-token" {
		t.Errorf("upgrade with adminToken.value: token %q", got)
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
