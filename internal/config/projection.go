// Reading one projection of the projections file: its name, its keys (see Keys) and its
// handlers.

package config

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/projector-dev/projector/projection"

	"github.com/projector-dev/projector/views/postgres/declarative"
)

func (p *parser) projection(i int, n *yaml.Node) *Projection {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "", fmt.Sprintf("projections[%d]", i), "must be a mapping with name and handlers")
		return nil
	}
	pr := &Projection{Line: n.Line}
	// Find the name first, so every other error can name the projection.
	e := &entry{pr: pr, label: p.projectionName(i, n, pr)}
	p.mapping(n, e.label, "", p.keyTree(e, Keys()))
	if e.partitionBy != nil && pr.Options.Partitions < 2 && pr.Options.PartitionBy != projection.PartitionByStream {
		p.add(e.partitionBy.Line, e.label, "partition_by", "needs partitions of 2 or more")
	}
	if e.partitionBy != nil && pr.Options.Partitions >= 2 && pr.Options.PartitionBy != projection.PartitionByStream && pr.Options.OnError.Policy == projection.PolicyPark {
		p.add(e.partitionBy.Line, e.label, "partition_by", fmt.Sprintf("%q with on_error.policy park: parking holds a stream's later events behind its failed one, so a stream's events must stay in one partition; use partition_by stream, or another policy", pr.Options.PartitionBy))
	}
	pr.Options = pr.Options.WithDefaults()
	if pr.OnChange == "" {
		pr.OnChange = OnChangeRebuild
	}
	if pr.OnDependency == "" {
		pr.OnDependency = OnDependencyRefuse
	}
	pr.KeepArchives = DefaultKeepArchives
	if e.keepArchives != nil {
		pr.KeepArchives = *e.keepArchives
	}
	batched := e.topics != nil || e.batch != nil
	if batched {
		p.batch(n, e)
	} else {
		p.handlers(n, e.handlers, e.label, pr)
	}
	if pr.Name == "" {
		if !hasKey(n, "name") {
			p.add(n.Line, e.label, "name", "missing; every projection needs a name (its tracking key)")
		}
		return nil
	}
	if batched {
		if len(pr.Topics) > 0 && len(pr.Topics) == len(e.topics.Content) && pr.Batch != "" {
			c, err := declarative.New(declarative.Spec{Name: pr.Name, Schema: pr.Schema, Reset: pr.Reset, Topics: pr.Topics, Batch: pr.Batch})
			if err != nil {
				p.add(n.Line, e.label, "batch.sql", err.Error())
			}
			pr.Compiled = c
		}
		return pr
	}
	if len(pr.Handlers) > 0 && len(pr.Handlers)*2 == len(e.handlers.Content) {
		c, err := declarative.New(declarative.Spec{Name: pr.Name, Schema: pr.Schema, Reset: pr.Reset, Handlers: pr.Handlers})
		if err != nil {
			p.add(n.Line, e.label, "handlers", err.Error())
		}
		pr.Compiled = c
	}
	return pr
}

// projectionName reads the name of projection n, the i-th, into pr and returns the label its
// errors go under: the name, or "#i" (counting from 1) without one.
func (p *parser) projectionName(i int, n *yaml.Node, pr *Projection) string {
	label := fmt.Sprintf("#%d", i+1)
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == "name" {
			v := n.Content[j+1]
			switch {
			case v.Kind != yaml.ScalarNode || v.Value == "":
				p.add(v.Line, label, "name", "must be a non-empty string")
			case !nameRE.MatchString(v.Value) || len(v.Value) > 63:
				p.add(v.Line, v.Value, "name", "must be 1 to 63 characters of a-z, 0-9 and _")
				pr.Name = v.Value
			default:
				pr.Name = v.Value
			}
			if pr.Name != "" {
				label = pr.Name
			}
		}
	}
	return label
}

// handlers reads the handlers mapping of projection n (nil when n has none) into pr, checking
// each handler's SQL.
func (p *parser) handlers(n, handlers *yaml.Node, label string, pr *Projection) {
	switch {
	case handlers == nil:
		p.add(n.Line, label, "handlers", "missing; map each event type to the SQL it runs (or list topics and give batch.sql)")
	case handlers.Kind != yaml.MappingNode:
		p.add(handlers.Line, label, "handlers", "must be a mapping from event type to SQL")
	case len(handlers.Content) == 0:
		p.add(handlers.Line, label, "handlers", "empty; map each event type to the SQL it runs")
	default:
		pr.handlerLines = map[string]int{}
		for j := 0; j+1 < len(handlers.Content); j += 2 {
			k, v := handlers.Content[j], handlers.Content[j+1]
			key := fmt.Sprintf("handlers.%q", k.Value)
			if k.Value == "" {
				p.add(k.Line, label, "handlers", "empty event type")
				continue
			}
			if _, dup := pr.handlerLines[k.Value]; dup {
				p.add(k.Line, label, key, "event type given twice")
				continue
			}
			sql := p.str(v, label, key)
			if strings.TrimSpace(sql) == "" {
				if v.Kind == yaml.ScalarNode {
					p.add(v.Line, label, key, "empty SQL")
				}
				continue
			}
			pr.handlerLines[k.Value] = textLine(v)
			if _, err := declarative.Parse(sql); err != nil {
				line := textLine(v)
				var se *declarative.SQLError
				if errors.As(err, &se) {
					line += se.Line - 1
					err = errors.New(se.Msg)
				}
				p.add(line, label, key, err.Error())
				continue
			}
			pr.Handlers = append(pr.Handlers, declarative.Handler{Topic: k.Value, SQL: sql})
		}
	}
}

// batch checks the batch form of projection n: topics and batch.sql, both, and no handlers;
// the batch SQL must parse, and takes no parameters.
func (p *parser) batch(n *yaml.Node, e *entry) {
	pr := e.pr
	if e.handlers != nil {
		p.add(e.handlers.Line, e.label, "handlers", "give either handlers, or topics and batch.sql; not both")
	}
	if e.topics == nil {
		p.add(n.Line, e.label, "topics", "missing; batch.sql runs over the events of the event types listed here")
	}
	if e.batch == nil {
		p.add(n.Line, e.label, "batch.sql", "missing; topics need the SQL that runs once per batch over their events")
		return
	}
	if strings.TrimSpace(pr.Batch) == "" {
		if e.batch.Kind == yaml.ScalarNode {
			p.add(e.batch.Line, e.label, "batch.sql", "empty SQL")
		}
		pr.Batch = ""
		return
	}
	if _, err := declarative.ParseBatch(pr.Batch); err != nil {
		line := pr.batchLine
		var se *declarative.SQLError
		if errors.As(err, &se) {
			line += se.Line - 1
			err = errors.New(se.Msg)
		}
		p.add(line, e.label, "batch.sql", err.Error())
		pr.Batch = ""
	}
}
