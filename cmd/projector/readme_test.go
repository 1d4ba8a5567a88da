package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/projector-dev/projector/internal/config"
	"github.com/projector-dev/projector/internal/testbin"
)

// The documentation: README.md and the reference pages under docs/. The tests below check each
// documented command, key, variable and metric against the code, on the page that holds it.

// repoRoot is the repository's root, relative to this package.
var repoRoot = filepath.Join("..", "..")

// docPage is one page of the documentation: its path from the repository root and its text.
type docPage struct {
	path, text string
}

// readDoc returns the page at path (from the repository root).
func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// allDocs returns README.md and every docs/*.md page.
func allDocs(t *testing.T) []docPage {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no docs/*.md page")
	}
	pages := []docPage{{path: "README.md", text: readDoc(t, "README.md")}}
	for _, p := range paths {
		rel := "docs/" + filepath.Base(p)
		pages = append(pages, docPage{path: rel, text: readDoc(t, rel)})
	}
	return pages
}

// fenced returns the contents of the code blocks of doc fenced as lang.
func fenced(doc, lang string) []string {
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		out = append(out, m[1])
	}
	return out
}

// The documentation's Go programs (the Go blocks that are whole files), wherever they are,
// compile against the current packages.
func TestDocsGoCompiles(t *testing.T) {
	t.Parallel()
	var blocks []string
	for _, page := range allDocs(t) {
		for _, b := range fenced(page.text, "go") {
			if strings.HasPrefix(b, "package ") {
				blocks = append(blocks, b)
			}
		}
	}
	if len(blocks) == 0 {
		t.Fatal("no Go program in README.md or docs/")
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, b := range blocks {
		// Each program is its own package main: build them one by one.
		src := filepath.Join(dir, "doc"+string(rune('a'+i))+".go")
		if err := os.WriteFile(src, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		overlay := map[string]map[string]string{"Replace": {filepath.Join(root, "internal", "docexample", "main.go"): src}}
		ov := filepath.Join(dir, "overlay"+string(rune('a'+i))+".json")
		j, _ := json.Marshal(overlay)
		if err := os.WriteFile(ov, j, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "build", "-overlay", ov, "-o", filepath.Join(dir, "doc-example"), "./internal/docexample")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("Go program %d of the documentation does not compile: %v\n%s", i+1, err, out)
		}
	}
}

// Every projections file in the documentation is valid and is one of examples/*.yaml.
func TestDocsYAMLIsTheExample(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/*.yaml: %v", err)
	}
	var examples []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		examples = append(examples, string(b))
	}
	isExample := func(b string) bool {
		for _, e := range examples {
			if strings.Contains(e, b) {
				return true
			}
		}
		return false
	}
	var found bool
	for _, page := range allDocs(t) {
		for _, b := range fenced(page.text, "yaml") {
			if !strings.HasPrefix(b, "projections:") {
				continue
			}
			found = true
			if _, err := config.Parse(page.path, []byte(b)); err != nil {
				t.Errorf("%s YAML: %v", page.path, err)
			}
			if !isExample(b) {
				t.Errorf("the projections file in %s is none of examples/*.yaml", page.path)
			}
		}
	}
	if !found {
		t.Error("no projections file in README.md or docs/")
	}
}

// Every projector command line in the documentation's shell blocks names real subcommands and
// flags: each one, with --help added, is accepted by the binary.
func TestDocsCommandsExist(t *testing.T) {
	t.Parallel()
	var n int
	for _, page := range allDocs(t) {
		for _, block := range fenced(page.text, "sh") {
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
					t.Errorf("%s: command %q: exit %d\n%s%s", page.path, strings.TrimSpace(line), code, out, errOut)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("found %d projector command lines in the documentation, want the operating commands", n)
	}
}
