package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/internal/testbin"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fenced(doc, lang string) []string {
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		out = append(out, m[1])
	}
	return out
}

// The README's Go programs (the Go blocks that are whole files) compile against the current
// packages.
func TestReadmeGoCompiles(t *testing.T) {
	t.Parallel()
	var blocks []string
	for _, b := range fenced(readme(t), "go") {
		if strings.HasPrefix(b, "package ") {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) == 0 {
		t.Fatal("no Go program in the README")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	overlay := map[string]map[string]string{"Replace": {}}
	for i, b := range blocks {
		src := filepath.Join(dir, "readme"+string(rune('a'+i))+".go")
		if err := os.WriteFile(src, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		overlay["Replace"][filepath.Join(root, "internal", "readmeexample", filepath.Base(src))] = src
	}
	ov := filepath.Join(dir, "overlay.json")
	j, _ := json.Marshal(overlay)
	if err := os.WriteFile(ov, j, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-overlay", ov, "-o", filepath.Join(dir, "readme-example"), "./internal/readmeexample")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go does not compile: %v\n%s", err, out)
	}
}

// The README's projections file is valid and is examples/dog_counts.yaml.
func TestReadmeYAMLIsTheExample(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "dog_counts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, b := range fenced(readme(t), "yaml") {
		if !strings.HasPrefix(b, "projections:") {
			continue
		}
		found = true
		if _, err := config.Parse("README.md", []byte(b)); err != nil {
			t.Errorf("README YAML: %v", err)
		}
		if !strings.Contains(string(example), strings.TrimPrefix(b, "projections:\n")) {
			t.Errorf("the README's projections file differs from examples/dog_counts.yaml")
		}
	}
	if !found {
		t.Error("no projections file in the README")
	}
}

// The metrics reference lists exactly the metrics the daemon exports.
func TestReadmeMetricsReference(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile("(?m)^\\| `(projector_[a-z_]+)")
	var documented []string
	for _, m := range re.FindAllStringSubmatch(readme(t), -1) {
		documented = append(documented, m[1])
	}
	exported := []string{metrics.EventsProcessed, metrics.EventsDeadLettered, metrics.Batches, metrics.BatchDuration,
		metrics.BatchEvents, metrics.Position, metrics.HeadPosition, metrics.LagPositions, metrics.LagSeconds,
		metrics.CaughtUp, metrics.Leader, metrics.Errors, metrics.SubscriptionRestarts, metrics.LastProgress, metrics.WaitDuration}
	sort.Strings(documented)
	sort.Strings(exported)
	if strings.Join(documented, " ") != strings.Join(exported, " ") {
		t.Errorf("README documents\n %v\nthe daemon exports\n %v", documented, exported)
	}
}

// The README's projector command lines name real subcommands and flags: each one, with --help
// added, is accepted by the binary.
func TestReadmeCommandsExist(t *testing.T) {
	t.Parallel()
	var n int
	for _, block := range fenced(readme(t), "sh") {
		for _, line := range strings.Split(block, "\n") {
			line, _, _ = strings.Cut(line, "#")
			fields := strings.Fields(strings.NewReplacer("[", "", "]", "").Replace(line))
			switch {
			case len(fields) > 0 && (fields[0] == "bin/projector" || fields[0] == "projector"):
				fields = fields[1:]
			case len(fields) > 2 && fields[0] == "go" && fields[1] == "run" && fields[2] == "./cmd/projector":
				fields = fields[3:]
			default:
				continue
			}
			n++
			if code, out, errOut := runProjector(t, testbin.Env(), append(fields, "--help")...); code != 0 || !strings.Contains(out, "Usage:") {
				t.Errorf("README command %q: exit %d\n%s%s", strings.TrimSpace(line), code, out, errOut)
			}
		}
	}
	if n < 5 {
		t.Errorf("found %d projector command lines in the README, want the operating commands", n)
	}
}

// The configuration reference documents every environment variable the daemon reads.
func TestReadmeConfigurationReference(t *testing.T) {
	t.Parallel()
	doc := readme(t)
	for _, env := range []string{config.EnvKurrentDBURI, config.EnvKurrentDBRootCerts, config.EnvDatabaseURL, config.EnvConfig,
		config.EnvHTTPAddr, config.EnvLogLevel, config.EnvLogFormat, config.EnvDrainTimeout, config.EnvAdminToken, config.EnvAdminTokenFile, config.EnvMaxWaits} {
		if !strings.Contains(doc, "| `"+env+"` |") {
			t.Errorf("the configuration reference lacks %s", env)
		}
	}
}
