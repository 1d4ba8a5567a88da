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
		metrics.CaughtUp, metrics.Leader, metrics.Errors, metrics.SubscriptionRestarts, metrics.LastProgress, metrics.WaitDuration,
		metrics.DeadLetters, metrics.Members, metrics.ParkedStreams}
	sort.Strings(documented)
	sort.Strings(exported)
	if strings.Join(documented, " ") != strings.Join(exported, " ") {
		t.Errorf("docs/metrics.md documents\n %v\nthe daemon exports\n %v", documented, exported)
	}
}

// The configuration reference (docs/configuration.md) has a row for every environment variable
// the daemon reads (their defaults are checked by internal/config's reference tests).
func TestDocsConfigurationEnvironment(t *testing.T) {
	t.Parallel()
	rows := tableRows(readDoc(t, "docs/configuration.md"))
	for _, v := range config.Variables() {
		if rows[v.Env] == nil {
			t.Errorf("docs/configuration.md has no row for the environment variable %s", v.Env)
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
		"Options.MaxBackoff": projection.DefaultMaxBackoff, "Options.DrainTimeout": 0} {
		if row := rows[key]; row != nil && row[0] != "`"+durationDoc(def)+"`" {
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
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(readDoc(t, "Makefile"), -1) {
		targets[m[1]] = true
	}
	use := regexp.MustCompile("(?m)(?:^|`)make ([a-z][a-z0-9-]*)")
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

// durationDoc is d as the documentation writes it: 0 for none.
func durationDoc(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return d.String()
}
