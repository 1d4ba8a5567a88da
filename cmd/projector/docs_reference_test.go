package main

import (
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/metrics"
	"github.com/projector-dev/projector/projection"
)

// tableRows returns the rows of doc's tables whose first cell is one code span ("| `key` |
// ..."), by that key: the row's other cells, trimmed.
func tableRows(doc string) map[string][]string {
	re := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|(.*)\\|$")
	rows := map[string][]string{}
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		var cells []string
		for _, c := range strings.Split(m[2], " | ") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows[m[1]] = cells
	}
	return rows
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
// the daemon reads, each in a row of its table, with the default the code applies.
func TestDocsConfigurationEnvironment(t *testing.T) {
	t.Parallel()
	rows := tableRows(readDoc(t, "docs/configuration.md"))
	for _, env := range []string{config.EnvKurrentDBURI, config.EnvKurrentDBRootCerts, config.EnvDatabaseURL, config.EnvConfig,
		config.EnvHTTPAddr, config.EnvLogLevel, config.EnvLogFormat, config.EnvDrainTimeout, config.EnvAdminToken, config.EnvAdminTokenFile} {
		if rows[env] == nil {
			t.Errorf("docs/configuration.md has no row for the environment variable %s", env)
		}
	}
	for env, def := range map[string]string{config.EnvHTTPAddr: config.DefaultHTTPAddr, config.EnvLogLevel: config.DefaultLogLevel,
		config.EnvLogFormat: config.DefaultLogFormat, config.EnvDrainTimeout: config.DefaultDrainTimeout} {
		if row := rows[env]; row != nil && !strings.Contains(strings.Join(row, " | "), "`"+def+"` (default") &&
			!strings.Contains(strings.Join(row, " | "), "(default `"+def+"`") {
			t.Errorf("docs/configuration.md: the row of %s does not give its default `%s`: %q", env, def, row)
		}
	}
}

// The configuration reference (docs/configuration.md) documents every key the projections
// file accepts, as the parser lists them, each in a row of its table with the parser's default,
// and no key it refuses.
func TestDocsConfigurationKeys(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "docs/configuration.md")
	_, keysTable, ok := strings.Cut(doc, "| key | default | meaning |")
	if !ok {
		t.Fatal("docs/configuration.md has no table of the projections file's keys (| key | default | meaning |)")
	}
	keysTable, _, _ = strings.Cut(keysTable, "\n\n")
	rows := tableRows(keysTable)
	known := map[string]bool{}
	for _, key := range config.KnownKeys() {
		known[key] = true
		if rows[key] == nil {
			t.Errorf("docs/configuration.md has no row for the projections file key %s", key)
		}
	}
	for key := range rows {
		if !known[key] {
			t.Errorf("docs/configuration.md documents the key %s, which the parser does not accept", key)
		}
	}
	for key, def := range map[string]string{"batch.size": strconv.Itoa(config.DefaultBatchSize),
		"batch.interval": config.DefaultBatchInterval.String(), "on_error.policy": config.DefaultPolicy,
		"on_error.retries": strconv.Itoa(config.DefaultRetries), "on_error.backoff": config.DefaultBackoff.String(),
		"start": string(config.StartBeginning)} {
		if row := rows[key]; row != nil && row[0] != "`"+def+"`" {
			t.Errorf("docs/configuration.md: the default of %s is %s, the parser's is `%s`", key, row[0], def)
		}
	}
}

// The Go library's options table (docs/go-library.md) has a row for every field of
// projection.Options and projection.ProjectionOptions, with the default the code applies.
func TestDocsGoOptions(t *testing.T) {
	t.Parallel()
	rows := tableRows(readDoc(t, "docs/go-library.md"))
	for _, typ := range []reflect.Type{reflect.TypeFor[projection.Options](), reflect.TypeFor[projection.ProjectionOptions]()} {
		for f := range typ.Fields() {
			if key := typ.Name() + "." + f.Name; f.IsExported() && rows[key] == nil {
				t.Errorf("docs/go-library.md has no row for %s", key)
			}
		}
	}
	for key, def := range map[string]time.Duration{"ProjectionOptions.BatchInterval": projection.DefaultBatchInterval,
		"Options.CheckpointEvery": projection.DefaultCheckpointEvery, "Options.MinBackoff": projection.DefaultMinBackoff,
		"Options.MaxBackoff": projection.DefaultMaxBackoff, "Options.DrainTimeout": projection.DefaultDrainTimeout} {
		if row := rows[key]; row != nil && row[0] != "`"+def.String()+"`" {
			t.Errorf("docs/go-library.md: the default of %s is %s, the code's is `%s`", key, row[0], def)
		}
	}
	if row := rows["ProjectionOptions.BatchSize"]; row != nil && row[0] != "`"+strconv.Itoa(projection.DefaultBatchSize)+"`" {
		t.Errorf("docs/go-library.md: the default of ProjectionOptions.BatchSize is %s, the code's is %d", row[0], projection.DefaultBatchSize)
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
