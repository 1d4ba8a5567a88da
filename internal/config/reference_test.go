package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
)

// referenceDocs returns the README and every docs/*.md page, by path.
func referenceDocs(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..")
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	for _, p := range append([]string{filepath.Join(root, "README.md")}, paths...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs[p] = string(b)
	}
	return docs
}

// tableRows returns the cells of the rows of every Markdown table in doc whose header row
// starts with the given column names.
func tableRows(doc string, header ...string) [][]string {
	var rows [][]string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			in = false
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case len(cells) >= len(header) && reflect.DeepEqual(cells[:len(header)], header):
			in = true
		case in && !strings.HasPrefix(cells[0], "---"):
			rows = append(rows, cells)
		}
	}
	return rows
}

// code strips the backquotes around a table cell.
func code(cell string) string { return strings.Trim(cell, "`") }

// Every key of a projection's entry is documented exactly once, in a "| key | default |" table
// of the README or docs/, with the default the code gives a projection that leaves it out; and
// every documented key exists.
func TestReferenceDocumentsEachKeyWithItsDefault(t *testing.T) {
	cfg, err := config.Parse("minimal.yaml", []byte("projections:\n  - name: p\n    handlers: {T: SELECT 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	defaults := cfg.Projections[0].Options
	keys := map[string]config.Key{}
	for _, k := range config.Keys() {
		keys[k.Path] = k
	}
	seen := map[string]string{}
	for path, doc := range referenceDocs(t) {
		for _, row := range tableRows(doc, "key", "default") {
			name, documented := code(row[0]), code(row[1])
			if name == "projections" && documented == "required" {
				continue // the top-level key, not one of an entry
			}
			k, ok := keys[name]
			switch {
			case !ok:
				t.Errorf("%s documents key %q, which the projections file does not have", path, name)
				continue
			case seen[name] != "":
				t.Errorf("key %q is documented twice: in %s and %s", name, seen[name], path)
			}
			seen[name] = path
			if want := k.Default(defaults); documented != want {
				t.Errorf("%s documents the default of %s as %q; the code's default is %q", path, name, documented, want)
			}
		}
	}
	for name := range keys {
		if seen[name] == "" {
			t.Errorf("key %s is not documented in a | key | default | table of the README or docs/", name)
		}
	}
}

var (
	defaultAfter  = regexp.MustCompile("default `([^`]*)`")
	defaultBefore = regexp.MustCompile("`([^`]*)` \\(default\\)")
)

// Every environment variable's documented default (in a "| variable |" table: "default `X`" or
// "`X` (default)") is the one FromEnv gives, and a variable documented without one has none.
func TestReferenceDocumentsEachVariableWithItsDefault(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	defaults := reflect.ValueOf(config.FromEnv(none))
	var n int
	for path, doc := range referenceDocs(t) {
		for _, row := range tableRows(doc, "variable") {
			name := code(row[0])
			meaning := strings.Join(row[1:], " | ")
			// The field the variable sets is the one that takes a value only it is given.
			const marker = "\x00set"
			set := reflect.ValueOf(config.FromEnv(func(k string) (string, bool) { return marker, k == name }))
			field := -1
			for i := range set.NumField() {
				if set.Field(i).Kind() == reflect.String && set.Field(i).String() == marker {
					field = i
				}
			}
			if field < 0 {
				t.Errorf("%s documents %s, which FromEnv does not read", path, name)
				continue
			}
			n++
			want := defaults.Field(field).String()
			var documented string
			if m := defaultAfter.FindStringSubmatch(meaning); m != nil {
				documented = m[1]
			} else if m := defaultBefore.FindStringSubmatch(meaning); m != nil {
				documented = m[1]
			}
			if documented != want {
				t.Errorf("%s documents the default of %s as %q; the code's default is %q", path, name, documented, want)
			}
		}
	}
	if n == 0 {
		t.Error("no | variable | table in the README or docs/")
	}
}
