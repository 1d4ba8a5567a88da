package chartcheck

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// configSource is the daemon's settings file, where PROJECTOR_MAX_WAITS's default and bounds
// are defined.
const configSource = "../../internal/config/env.go"

// daemonConstant returns the value of the integer constant name in the daemon's settings file.
func daemonConstant(t *testing.T, name string) int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), configSource, nil, 0)
	if err != nil {
		t.Fatalf("parse the daemon's settings: %v", err)
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if id.Name != name || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					t.Fatalf("%s: %s is not an integer literal", configSource, name)
				}
				n, err := strconv.Atoi(strings.ReplaceAll(lit.Value, "_", ""))
				if err != nil {
					t.Fatalf("%s: %s = %s: %v", configSource, name, lit.Value, err)
				}
				return n
			}
		}
	}
	t.Fatalf("%s defines no constant %s", configSource, name)
	return 0
}

// The chart's default for maxWaits is the daemon's default, and the schema allows exactly the
// range the daemon accepts.
func TestMaxWaitsMatchesTheDaemon(t *testing.T) {
	env := envMap(renderSet(t, Options{}).Deployments[0].Spec.Template.Spec.Containers[0])
	if got, want := env["PROJECTOR_MAX_WAITS"].Value, strconv.Itoa(daemonConstant(t, "DefaultMaxWaits")); got != want {
		t.Errorf("default PROJECTOR_MAX_WAITS = %q, want the daemon's default %s", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			MaxWaits struct {
				Type             string
				Minimum, Maximum int
			} `json:"maxWaits"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	s := schema.Properties.MaxWaits
	if want := daemonConstant(t, "maxMaxWaits"); s.Type != "integer" || s.Minimum != 1 || s.Maximum != want {
		t.Errorf("values.schema.json maxWaits: %+v, want an integer from 1 to %d as the daemon accepts", s, want)
	}
}

// maxWaits reaches the daemon and the migrate init container (which share their environment)
// as PROJECTOR_MAX_WAITS.
func TestMaxWaitsSetsTheEnvironment(t *testing.T) {
	for _, n := range []int{1, 250, 1000000} {
		pod := renderSet(t, Options{Values: map[string]any{"maxWaits": n}}).Deployments[0].Spec.Template.Spec
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			if got := envMap(c)["PROJECTOR_MAX_WAITS"].Value; got != strconv.Itoa(n) {
				t.Errorf("maxWaits %d: %s has PROJECTOR_MAX_WAITS %q", n, c.Name, got)
			}
		}
	}
}

// Values the daemon would refuse at start fail the install instead, naming the value.
func TestMaxWaitsOutOfRange(t *testing.T) {
	for name, v := range map[string]any{"zero": 0, "negative": -5, "above the cap": 1000001, "a fraction": 2.5, "a word": "many"} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(chartDir, Options{Values: map[string]any{"maxWaits": v}})
			if err == nil || !strings.Contains(err.Error(), "/maxWaits") {
				t.Errorf("maxWaits %v: err = %v, want a schema error naming /maxWaits", v, err)
			}
		})
	}
}
