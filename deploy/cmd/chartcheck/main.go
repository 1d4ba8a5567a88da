// Command chartcheck renders the Projector Helm chart as `helm template` does, lints it as
// `helm lint --strict` does, decodes every manifest strictly into its Kubernetes API type and
// prints the manifests. It exits 1 on the first values file that fails.
//
//	go run ./cmd/chartcheck [-chart DIR] [-release NAME] [-namespace NS] [-q] [VALUES.yaml ...]
//
// With no values files it checks the chart's default values; each values file is checked on its
// own, over the defaults.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/projector-dev/projector/deploy/chartcheck"
)

func main() {
	chart := flag.String("chart", "helm/projector", "the chart's directory")
	release := flag.String("release", "projector", "the release name")
	namespace := flag.String("namespace", "default", "the release namespace")
	quiet := flag.Bool("q", false, "do not print the manifests")
	flag.Parse()
	cases := [][]string{nil}
	if flag.NArg() > 0 {
		cases = nil
		for _, f := range flag.Args() {
			cases = append(cases, []string{f})
		}
	}
	for _, files := range cases {
		name := "default values"
		if files != nil {
			name = files[0]
		}
		if err := check(*chart, chartcheck.Options{ReleaseName: *release, Namespace: *namespace, ValuesFiles: files}, *quiet); err != nil {
			fmt.Fprintf(os.Stderr, "chartcheck: %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "chartcheck: %s: lint, template and strict validation passed\n", name)
	}
}

func check(chart string, opts chartcheck.Options, quiet bool) error {
	if err := chartcheck.Lint(chart, opts); err != nil {
		return err
	}
	ms, err := chartcheck.Render(chart, opts)
	if err != nil {
		return err
	}
	set, err := chartcheck.DecodeAll(ms)
	if err != nil {
		return err
	}
	if err := set.Check(); err != nil {
		return err
	}
	if !quiet {
		for _, m := range ms {
			fmt.Printf("---\n# Source: %s\n%s\n", m.Source, m.Content)
		}
	}
	return nil
}
