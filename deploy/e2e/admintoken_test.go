package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/deploy/chartcheck"
	corev1 "k8s.io/api/core/v1"
)

// TestAdminTokenAsTheChartMountsIt runs the real daemon with the admin token given the way the
// chart's Deployment gives it: the file the chart's Secret volume projects into the daemon
// container, named by that container's PROJECTOR_ADMIN_TOKEN_FILE. The commands then refuse a
// request without the token or with another, and `projector skip` run with the container's
// environment (as `kubectl exec` into the pod runs it) is accepted.
func TestAdminTokenAsTheChartMountsIt(t *testing.T) {
	const token = "e2e-4d1f0c9a7b3e"
	ms, err := chartcheck.Render("../helm/projector", chartcheck.Options{Values: map[string]any{"adminToken": map[string]any{"value": token + "\n"}}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := chartcheck.DecodeAll(ms)
	if err != nil {
		t.Fatal(err)
	}
	pod := set.Deployments[0].Spec.Template.Spec
	tokenFile := projectSecretFile(t, set, pod, pod.Containers[0], "PROJECTOR_ADMIN_TOKEN_FILE")

	s := startStack(t, configPoison, "PROJECTOR_ADMIN_TOKEN_FILE="+tokenFile)
	s.appendEvents(t, "dog-fido", dog("Fido", "sit", "poison", "beg")...)
	state := func() (string, error) {
		_, body, err := httpGet("http://" + s.httpAddr + "/v1/projections/strict_tricks")
		if err != nil {
			return "", err
		}
		var p struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return "", fmt.Errorf("%w: %s", err, body)
		}
		return p.State, nil
	}
	eventually(t, 60*time.Second, "strict_tricks stopped on the poison event", func() error {
		st, err := state()
		if err == nil && st != "stopped" {
			err = fmt.Errorf("state %q", st)
		}
		return err
	})

	for _, auth := range []string{"", "Bearer guess", "Bearer " + token + "x"} {
		req, err := http.NewRequest(http.MethodPost, "http://"+s.httpAddr+"/v1/projections/strict_tricks/skip", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("skip with Authorization %q = %d %s, want 401", auth, resp.StatusCode, body)
		}
	}
	if st, err := state(); err != nil || st != "stopped" {
		t.Fatalf("after refused commands strict_tricks is %q (%v), want still stopped", st, err)
	}

	cmd := exec.Command(bins.projector, "skip", "strict_tricks")
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "skip strict_tricks: accepted") {
		t.Fatalf("projector skip with the container's environment: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, "strict_tricks past the poison event", func() error {
		st, err := state()
		if err == nil && st == "stopped" {
			err = fmt.Errorf("state %q", st)
		}
		return err
	})
	b, err := os.ReadFile(s.projector.log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "unauthenticated") {
		t.Errorf("the daemon warned that the commands are unauthenticated although it has a token:\n%s", b)
	}
}

// projectSecretFile lays out, under a temporary directory, the Secret volume that holds the file
// the container's environment variable env names, as the kubelet would (the rendered Secret's
// keys as the volume's items, with its defaultMode), and returns the path of that file there.
func projectSecretFile(t *testing.T, set *chartcheck.Set, pod corev1.PodSpec, c corev1.Container, env string) string {
	t.Helper()
	var file string
	for _, e := range c.Env {
		if e.Name == env {
			file = e.Value
		}
	}
	if file == "" {
		t.Fatalf("container %s does not set %s", c.Name, env)
	}
	root := t.TempDir()
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(file, m.MountPath+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			for _, sec := range set.Secrets {
				if sec.Name != v.Secret.SecretName {
					continue
				}
				mode := os.FileMode(0o644)
				if v.Secret.DefaultMode != nil {
					mode = os.FileMode(*v.Secret.DefaultMode)
				}
				for _, it := range v.Secret.Items {
					p := filepath.Join(root, m.MountPath, it.Path)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(sec.StringData[it.Key]), mode); err != nil {
						t.Fatal(err)
					}
				}
				return filepath.Join(root, file)
			}
		}
	}
	t.Fatalf("container %s: %s %s is not in a mounted Secret the chart renders", c.Name, env, file)
	return ""
}
