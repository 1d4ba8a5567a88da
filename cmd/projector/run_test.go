package main

import (
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
)

func TestRunOptions(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(`projections:
  - name: a
    batch: {size: 7, interval: 3ms}
    on_error: {policy: retry, retries: 2, backoff: 250ms}
    start: 4242
    handlers: {T: SELECT 1}
  - name: b
    start: end
    on_error: {policy: skip, backoff: 1m}
    handlers: {T: SELECT 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := runOptions(cfg.Projections[0]), runOptions(cfg.Projections[1])
	want := projection.ProjectionOptions{
		BatchSize: 7, BatchInterval: 3 * time.Millisecond,
		Start:   projection.Start{Kind: projection.StartAfter, Position: projection.Position{Commit: 4242, Prepare: 4242}},
		OnError: projection.ErrorPolicy{Kind: projection.PolicyRetry, Retries: 2, MinBackoff: 250 * time.Millisecond, MaxBackoff: projection.DefaultMaxBackoff},
	}
	if a != want {
		t.Errorf("a = %+v\nwant %+v", a, want)
	}
	if b.Start.Kind != projection.StartEnd || b.OnError.Kind != projection.PolicySkip || b.OnError.MaxBackoff != time.Minute || b.BatchSize != config.DefaultBatchSize {
		t.Errorf("b = %+v", b)
	}
}

func TestLocalURL(t *testing.T) {
	for in, want := range map[string]string{
		":9090": "http://127.0.0.1:9090", "0.0.0.0:80": "http://127.0.0.1:80", "[::]:9090": "http://127.0.0.1:9090",
		"10.0.0.5:9090": "http://10.0.0.5:9090", "localhost:1": "http://localhost:1",
	} {
		if got := localURL(in); got != want {
			t.Errorf("localURL(%q) = %q, want %q", in, got, want)
		}
	}
}
