package tracing_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/tracing"
)

// The tracing table of docs/operations.md lists exactly the variables tracing reads (and the
// SDK's resource reads for it), and the span names and attributes it makes.
func TestDocsTracing(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, table, ok := strings.Cut(doc, "| OpenTelemetry variable | effect |")
	if !ok {
		t.Fatal("docs/operations.md has no | OpenTelemetry variable | table")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var documented []string
	for _, line := range strings.Split(table, "\n") {
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range regexp.MustCompile("`(OTEL_[A-Z_]+)`").FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	read := []string{tracing.EnvSDKDisabled, tracing.EnvTracesExporter, tracing.EnvEndpoint, tracing.EnvTracesEndpoint,
		tracing.EnvProtocol, tracing.EnvTracesProtocol, tracing.EnvServiceName, tracing.EnvResourceAttributes}
	slices.Sort(documented)
	slices.Sort(read)
	if !slices.Equal(documented, read) {
		t.Errorf("the tracing table documents %v; tracing reads %v", documented, read)
	}
	for _, name := range []string{tracing.SpanBatch, tracing.SpanWait, string(tracing.AttrProjection), string(tracing.AttrBatchEvents),
		string(tracing.AttrBatchFirst), string(tracing.AttrBatchLast), string(tracing.AttrBatchPosition), string(tracing.AttrBatchOutcome),
		string(tracing.AttrWaitPosition), string(tracing.AttrWaitReached), string(tracing.AttrWaitOutcome), string(tracing.AttrWaitTimeout),
		string(tracing.AttrLinkRelease), string(tracing.WaitDone), string(tracing.WaitTimeout), string(tracing.WaitRefused),
		string(tracing.WaitCancelled), string(tracing.WaitFailed)} {
		if !strings.Contains(doc, "`"+name) {
			t.Errorf("docs/operations.md does not name %s", name)
		}
	}
}
