package main

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	fenceRE   = regexp.MustCompile("(?s)```.*?```")
	linkRE    = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
)

// anchors returns the anchors GitHub gives the headings of doc: lower case, punctuation other
// than - and _ removed, spaces as -, a repeated one suffixed -1, -2 and so on.
func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range headingRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(doc, ""), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a] = n + 1
			a += "-" + string(rune('0'+n))
		} else {
			seen[a] = 1
		}
		out[a] = true
	}
	return out
}

// Every relative link in README.md and docs/*.md points to an existing file, and its anchor, if
// any, to a heading of that file.
func TestDocsLinks(t *testing.T) {
	t.Parallel()
	var n int
	for _, page := range allDocs(t) {
		for _, m := range linkRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(page.text, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			file, anchor, _ := strings.Cut(target, "#")
			dest := page.path
			if file != "" {
				dest = path.Join(path.Dir(page.path), file)
			}
			b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(dest)))
			if err != nil {
				t.Errorf("%s: link %s: %v", page.path, target, err)
				continue
			}
			if anchor != "" && !anchors(string(b))[anchor] {
				t.Errorf("%s: link %s: %s has no heading with the anchor #%s", page.path, target, dest, anchor)
			}
		}
	}
	if n == 0 {
		t.Error("no relative link in README.md or docs/")
	}
}

// The README links every page under docs/, and each page opens with its title and one sentence
// on what it covers.
func TestDocsPagesAreLinkedAndIntroduced(t *testing.T) {
	t.Parallel()
	pages := allDocs(t)
	readme := pages[0].text
	for _, page := range pages[1:] {
		if !strings.Contains(readme, "]("+page.path+")") {
			t.Errorf("README.md does not link %s", page.path)
		}
		title, rest, _ := strings.Cut(page.text, "\n\n")
		if !strings.HasPrefix(title, "# ") || !strings.HasPrefix(rest, "This page ") {
			t.Errorf("%s does not open with a title and a sentence \"This page ...\" on what it covers", page.path)
		}
	}
}
