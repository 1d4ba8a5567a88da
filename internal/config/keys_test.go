package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/projection"
)

// Every key KnownKeys lists is accepted by Parse where its dotted path says, and sets what it
// names.
func TestKnownKeysAreAccepted(t *testing.T) {
	type sample struct {
		value string
		got   func(config.Projection) any
		want  any
	}
	samples := map[string]sample{
		"batch.size":       {"7", func(p config.Projection) any { return p.Options.BatchSize }, 7},
		"batch.interval":   {"3s", func(p config.Projection) any { return p.Options.BatchInterval }, 3 * time.Second},
		"on_error.policy":  {"skip", func(p config.Projection) any { return p.Options.OnError.Policy }, projection.PolicySkip},
		"on_error.retries": {"2", func(p config.Projection) any { return p.Options.OnError.Retries }, 2},
		"on_error.backoff": {"4s", func(p config.Projection) any { return p.Options.OnError.Backoff }, 4 * time.Second},
		"start":            {"end", func(p config.Projection) any { return p.Options.Start.Kind }, projection.StartEnd},
		"schema":           {"CREATE TABLE t (n int)", func(p config.Projection) any { return p.Schema }, "CREATE TABLE t (n int)"},
		"reset":            {"TRUNCATE t", func(p config.Projection) any { return p.Reset }, "TRUNCATE t"},
		"version":          {"2", func(p config.Projection) any { return p.Version }, "2"},
		"on_change":        {"fail", func(p config.Projection) any { return p.OnChange }, config.OnChangeFail},
		"on_dependency":    {"proceed", func(p config.Projection) any { return p.OnDependency }, config.OnDependencyProceed},
		"keep_archives":    {"3", func(p config.Projection) any { return p.KeepArchives }, 3},
		"partitions":       {"4", func(p config.Projection) any { return p.Options.Partitions }, 4},
		"partition_by":     {"stream", func(p config.Projection) any { return p.Options.PartitionBy }, "stream"},
	}
	keys := config.KnownKeys()
	for _, key := range keys {
		switch key {
		case "projections", "name", "handlers": // every file below has them
			continue
		case "topics", "batch.sql": // instead of handlers: batch_test.go parses them
			continue
		}
		s, ok := samples[key]
		if !ok {
			t.Errorf("no sample value for key %s: add one to this test", key)
			continue
		}
		entry := key + ": " + s.value
		if parent, child, nested := strings.Cut(key, "."); nested {
			entry = parent + ": {" + child + ": " + s.value + "}"
		}
		doc := "projections:\n  - name: a\n    " + entry + "\n    handlers: {T: SELECT 1}\n"
		cfg, err := config.Parse("p.yaml", []byte(doc))
		if err != nil {
			t.Errorf("key %s: %v", key, err)
			continue
		}
		if got := s.got(cfg.Projections[0]); fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("key %s: %v, want %v", key, got, s.want)
		}
	}
	for _, key := range []string{"projections", "name", "handlers"} {
		if !strings.Contains(" "+strings.Join(keys, " ")+" ", " "+key+" ") {
			t.Errorf("KnownKeys %v lacks %s", keys, key)
		}
	}
}

// A key next to a known one, in the same mapping, that is not listed is refused.
func TestUnknownKeyIsRefused(t *testing.T) {
	for _, key := range config.KnownKeys() {
		if key == "projections" {
			continue
		}
		entry := key + "_not: 1"
		if parent, child, nested := strings.Cut(key, "."); nested {
			entry = parent + ": {" + child + "_not: 1}"
		}
		doc := "projections:\n  - name: a\n    handlers: {T: SELECT 1}\n    " + entry + "\n"
		if _, err := config.Parse("p.yaml", []byte(doc)); err == nil || !strings.Contains(err.Error(), "unknown key") {
			t.Errorf("a key beside %s that is not known: err %v, want unknown key", key, err)
		}
	}
}

// Every error policy is spelled in the projections file as the runner names it.
func TestEveryErrorPolicyIsAccepted(t *testing.T) {
	for _, pol := range []projection.PolicyKind{projection.PolicyStop, projection.PolicyRetry, projection.PolicySkip, projection.PolicyPark} {
		doc := "projections:\n  - name: a\n    on_error: {policy: " + string(pol) + "}\n    handlers: {T: SELECT 1}\n"
		cfg, err := config.Parse("p.yaml", []byte(doc))
		if err != nil {
			t.Errorf("policy %s: %v", pol, err)
			continue
		}
		if got := cfg.Projections[0].Options.OnError.Policy; got != pol {
			t.Errorf("policy %s: parsed as %s", pol, got)
		}
	}
}
