package chartcheck

import (
	"encoding/base64"
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
