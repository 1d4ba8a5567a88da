// A projection's definition, whose fingerprint identifies its version, and what the daemon does
// when it changes.

package config

import (
	"fmt"

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

// Definition returns what makes up the projection's version: its SQL texts and explicit
// version (see versions.Definition).
func (p *Projection) Definition() versions.Definition {
	d := versions.Definition{Name: p.Name, Version: p.Version, Schema: p.Schema, Reset: p.Reset,
		BatchTopics: p.Topics, Batch: p.Batch}
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
