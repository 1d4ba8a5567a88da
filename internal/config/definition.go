// A projection's definition, whose fingerprint identifies its version, and what the daemon does
// when it changes.

package config

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/versions"
)

// OnChange is what the daemon does at start when a projection's definition differs from the
// version serving its tables (the on_change key).
type OnChange string

// The on_change policies.
const (
	// OnChangeRebuild builds the new version in a shadow schema from the start, while the
	// serving version stays live, and swaps it in once it has caught up.
	OnChangeRebuild OnChange = "rebuild"
	// OnChangeFail refuses to start (exit 2), naming the projection and what changed.
	OnChangeFail OnChange = "fail"
	// OnChangeContinue adopts the new definition from the current position, without
	// rebuilding: the events already projected stay as the old version projected them.
	OnChangeContinue OnChange = "continue"
)

func parseOnChange(p *parser, e *entry, v *yaml.Node) {
	switch k := OnChange(p.str(v, e.label, "on_change")); k {
	case OnChangeRebuild, OnChangeFail, OnChangeContinue:
		e.pr.OnChange = k
	default:
		p.add(v.Line, e.label, "on_change", fmt.Sprintf("unknown policy %q; use %s, %s or %s", k, OnChangeRebuild, OnChangeFail, OnChangeContinue))
	}
}

// OnDependency is what a rebuild does about relations of others (views, foreign keys) that
// depend on the projection's live tables and cannot move with them at the swap (the
// on_dependency key).
type OnDependency string

// The on_dependency policies.
const (
	// OnDependencyRefuse refuses the rebuild (the daemon does not start, exit 2) while there
	// are any, and a swap waits while any has appeared since the build started.
	OnDependencyRefuse OnDependency = "refuse"
	// OnDependencyProceed builds and swaps anyway: the dependents keep pointing at the old
	// tables, now in the archive schema (PostgreSQL follows a table by its identity, not its
	// name); the daemon names them in its log at the start of the build and at the swap.
	OnDependencyProceed OnDependency = "proceed"
)

func parseOnDependency(p *parser, e *entry, v *yaml.Node) {
	switch k := OnDependency(p.str(v, e.label, "on_dependency")); k {
	case OnDependencyRefuse, OnDependencyProceed:
		e.pr.OnDependency = k
	default:
		p.add(v.Line, e.label, "on_dependency", fmt.Sprintf("unknown policy %q; use %s or %s", k, OnDependencyRefuse, OnDependencyProceed))
	}
}

// DefaultKeepArchives is how many archived versions of a projection keep their tables (for a
// rollback) when its keep_archives key is left out.
const DefaultKeepArchives = 1

func parseKeepArchives(p *parser, e *entry, v *yaml.Node) {
	n, err := strconv.Atoi(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || n < 0 {
		p.add(v.Line, e.label, "keep_archives", fmt.Sprintf("must be a whole number ≥ 0, not %q (0 drops the previous version's tables at the swap: no rollback)", v.Value))
		return
	}
	e.keepArchives = &n
}

// Definition returns what makes up the projection's version: its SQL texts and explicit
// version (see versions.Definition), with the policies its swap follows.
func (p *Projection) Definition() versions.Definition {
	keep := p.KeepArchives
	d := versions.Definition{Name: p.Name, Version: p.Version, Schema: p.Schema, Reset: p.Reset,
		BatchTopics: p.Topics, Batch: p.Batch, OnDependency: string(p.OnDependency), KeepArchives: &keep}
	if p.Options.Partitions > 1 {
		d.Partitions, d.PartitionBy = p.Options.Partitions, p.Options.PartitionBy
		if d.PartitionBy == "" {
			d.PartitionBy = projection.PartitionByStream
		}
	}
	for _, h := range p.Handlers {
		d.Handlers = append(d.Handlers, versions.Handler{Topic: h.Topic, SQL: h.SQL})
	}
	return d
}
