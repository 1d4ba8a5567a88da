package bench

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
)

var exampleConfigs = []string{"../../examples/training_school.yaml", "../../examples/dog_counts.yaml"}

func TestMergeConfigsKeepsEveryProjectionAsWritten(t *testing.T) {
	b, err := MergeConfigs(exampleConfigs)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := config.Parse("merged.yaml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var want []config.Projection
	for _, path := range exampleConfigs {
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c.Projections...)
	}
	if len(merged.Projections) != len(want) {
		t.Fatalf("%d projections, want %d", len(merged.Projections), len(want))
	}
	for i, p := range merged.Projections {
		w := want[i]
		if p.Name != w.Name || p.Schema != w.Schema || p.Reset != w.Reset || p.Options != w.Options || !reflect.DeepEqual(p.Handlers, w.Handlers) {
			t.Errorf("projection %d: %+v\nwant %+v", i, p, w)
		}
	}
	topics := Topics(merged)
	if len(topics) != 2 || !topics["__main__:Dog.Registered"] || !topics["__main__:Dog.TrickAdded"] {
		t.Errorf("topics %v", topics)
	}
}

func TestMergeConfigsNamesTheBadFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("projections:\n  - name: x\n    handlers: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{exampleConfigs[0], bad}, "bad.yaml:3"},
		{[]string{filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{exampleConfigs[1], exampleConfigs[1]}, "duplicate projection name"},
		{nil, "no projections file"},
	} {
		_, err := MergeConfigs(tc.paths)
		if tc.want == "duplicate projection name" && err == nil {
			// Each file is valid alone: the duplicate shows when the merged file is loaded.
			b, _ := MergeConfigs(tc.paths)
			_, err = config.Parse("merged.yaml", b)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.paths, err, tc.want)
		}
	}
}

func TestWithPartitionsSetsTheKeyOfEveryProjection(t *testing.T) {
	b, err := MergeConfigs(exampleConfigs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 4} {
		out, err := WithPartitions(b, n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 4 { // over a file that has the key already
			if out, err = WithPartitions(out, n); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := config.Parse("partitioned.yaml", out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, p := range cfg.Projections {
			if p.Options.Partitions != n {
				t.Errorf("%d partitions: projection %s has %d", n, p.Name, p.Options.Partitions)
			}
		}
	}
}
