package main

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/metrics"
)

// tableKeys returns the first column of the rows of doc's tables whose first cell is one
// code span: "| `key` | ...".
func tableKeys(doc string) map[string]bool {
	re := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
	keys := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		keys[m[1]] = true
	}
	return keys
}

// The metrics reference (docs/metrics.md) lists exactly the metrics the daemon exports.
func TestDocsMetricsReference(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile("(?m)^\\| `(projector_[a-z_]+)")
	var documented []string
	for _, m := range re.FindAllStringSubmatch(readDoc(t, "docs/metrics.md"), -1) {
		documented = append(documented, m[1])
	}
	exported := []string{metrics.EventsProcessed, metrics.EventsDeadLettered, metrics.Batches, metrics.BatchDuration,
		metrics.BatchEvents, metrics.Position, metrics.HeadPosition, metrics.LagPositions, metrics.LagSeconds,
		metrics.CaughtUp, metrics.Leader, metrics.Errors, metrics.SubscriptionRestarts, metrics.LastProgress, metrics.WaitDuration}
	sort.Strings(documented)
	sort.Strings(exported)
	if strings.Join(documented, " ") != strings.Join(exported, " ") {
		t.Errorf("docs/metrics.md documents\n %v\nthe daemon exports\n %v", documented, exported)
	}
}

// The configuration reference (docs/configuration.md) documents every environment variable
// the daemon reads, each in a row of its table.
func TestDocsConfigurationEnvironment(t *testing.T) {
	t.Parallel()
	rows := tableKeys(readDoc(t, "docs/configuration.md"))
	for _, env := range []string{config.EnvKurrentDBURI, config.EnvKurrentDBRootCerts, config.EnvDatabaseURL, config.EnvConfig,
		config.EnvHTTPAddr, config.EnvLogLevel, config.EnvLogFormat, config.EnvDrainTimeout, config.EnvAdminToken, config.EnvAdminTokenFile} {
		if !rows[env] {
			t.Errorf("docs/configuration.md has no row for the environment variable %s", env)
		}
	}
}

// The configuration reference (docs/configuration.md) documents every key the projections
// file accepts, as the parser lists them, each in a row of its table, and no key it refuses.
func TestDocsConfigurationKeys(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "docs/configuration.md")
	_, keysTable, ok := strings.Cut(doc, "| key | default | meaning |")
	if !ok {
		t.Fatal("docs/configuration.md has no table of the projections file's keys (| key | default | meaning |)")
	}
	keysTable, _, _ = strings.Cut(keysTable, "\n\n")
	rows := tableKeys(keysTable)
	known := map[string]bool{}
	for _, key := range config.KnownKeys() {
		known[key] = true
		if !rows[key] {
			t.Errorf("docs/configuration.md has no row for the projections file key %s", key)
		}
	}
	for key := range rows {
		if !known[key] {
			t.Errorf("docs/configuration.md documents the key %s, which the parser does not accept", key)
		}
	}
}

// Every make target the documentation names exists in the Makefile, and the README's
// quickstart runs the main job and the tests.
func TestDocsMakeTargets(t *testing.T) {
	t.Parallel()
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z-]*):`).FindAllStringSubmatch(readDoc(t, "Makefile"), -1) {
		targets[m[1]] = true
	}
	use := regexp.MustCompile("(?m)(?:^|`)make ([a-z][a-z-]*)")
	var n int
	for _, page := range allDocs(t) {
		for _, m := range use.FindAllStringSubmatch(page.text, -1) {
			n++
			if !targets[m[1]] {
				t.Errorf("%s names make %s, which the Makefile does not have", page.path, m[1])
			}
		}
	}
	if n == 0 {
		t.Error("the documentation names no make target")
	}
	_, quickstart, _ := strings.Cut(readDoc(t, "README.md"), "## Quickstart")
	blocks := fenced(quickstart, "sh")
	if len(blocks) == 0 {
		t.Fatal("README.md: no shell block under Quickstart")
	}
	for _, cmd := range []string{"make demo ", "make test "} {
		if !strings.Contains(blocks[0], "\n"+cmd) && !strings.HasPrefix(blocks[0], cmd) {
			t.Errorf("README.md: the quickstart does not run %q", strings.TrimSpace(cmd))
		}
	}
}
