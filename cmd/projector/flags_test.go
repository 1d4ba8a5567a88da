package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// No flag's usage holds a backtick (pflag would take the quoted word for the flag's value
// name, as `projector migrate` once became the value of --no-migrate), every value name is the
// flag's type, and no flag's default is a value: flags backed by a variable show its name.
func TestFlagUsage(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard, lookup: func(string) (string, bool) { return "planted", true }}
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			seen++
			where := c.CommandPath() + " --" + f.Name
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s: usage holds a backtick: %s", where, f.Usage)
			}
			if name, _ := pflag.UnquoteUsage(f); name != "" && name != f.Value.Type() {
				t.Errorf("%s: value name %q, want its type %q", where, name, f.Value.Type())
			}
			if strings.Contains(f.DefValue, "planted") {
				t.Errorf("%s: default %q comes from the environment", where, f.DefValue)
			}
		}
		c.LocalFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCommand())
	if seen < 20 {
		t.Errorf("checked %d flags, want every flag of every command", seen)
	}
}
