package httpapi

import (
	"os"
	"regexp"
	"testing"
)

// The status page has a button for every command the API registers: a command added to the
// API without one fails here.
func TestStatusPageHasAButtonForEveryCommand(t *testing.T) {
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	buttons := map[string]bool{}
	for _, m := range regexp.MustCompile(`commandButton\("[^"]+", "([^"]+)"`).FindAllStringSubmatch(string(js), -1) {
		buttons[m[1]] = true
	}
	registered := regexp.MustCompile(`a\.handleCommand\(mux, "([^"]+)"`)
	var n int
	for _, f := range packageFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range registered.FindAllStringSubmatch(string(src), -1) {
			n++
			if !buttons[m[1]] {
				t.Errorf("the command %s (%s) has no button on the status page (assets/app.js)", m[1], f)
			}
		}
	}
	if n < 5 {
		t.Fatalf("found %d registered commands; the pattern no longer matches how commands are registered", n)
	}
}
