// The keys of a projection's entry in the projections file: how each is read into the
// projection's options, and the default the reference documents for it.

package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/projector-dev/projector/projection"
)

// Key is one key of a projection's entry in the projections file. The Keys table is the only
// list of them: the parser walks it, and a test checks the reference documentation against it.
type Key struct {
	// Path is the dotted key, e.g. on_error.policy.
	Path string
	// Default is the default as the reference documents it, given the options a projection
	// that leaves the key out runs with ("required" for keys without one, "empty" for text).
	Default func(o projection.ProjectionOptions) string

	// parse reads v, the key's value, into e.
	parse func(p *parser, e *entry, v *yaml.Node)
}

// entry is a projection being read: what the keys fill in, and the label its errors go under.
type entry struct {
	pr       *Projection
	label    string
	handlers *yaml.Node // the handlers mapping, checked once every key is read
	topics   *yaml.Node // the topics list, if given
	batch    *yaml.Node // the batch.sql text, if given
	// keepArchives is the keep_archives value, if given.
	keepArchives *int
	// partitionBy is the partition_by value, if given (it needs partitions of 2 or more).
	partitionBy *yaml.Node
}

func fixed(s string) func(projection.ProjectionOptions) string {
	return func(projection.ProjectionOptions) string { return s }
}

// Keys returns the keys of a projection's entry, in the order the reference lists them.
func Keys() []Key {
	return []Key{
		{Path: "name", Default: fixed("required"), parse: func(*parser, *entry, *yaml.Node) {}}, // read first, by projectionName
		{Path: "batch.size", Default: func(o projection.ProjectionOptions) string { return strconv.Itoa(o.BatchSize) },
			parse: func(p *parser, e *entry, v *yaml.Node) {
				e.pr.Options.BatchSize = p.positiveInt(v, e.label, "batch.size")
			}},
		{Path: "batch.interval", Default: func(o projection.ProjectionOptions) string { return o.BatchInterval.String() },
			parse: func(p *parser, e *entry, v *yaml.Node) {
				e.pr.Options.BatchInterval = p.duration(v, e.label, "batch.interval")
			}},
		{Path: "on_error.policy", Default: func(o projection.ProjectionOptions) string { return string(o.OnError.Policy) },
			parse: parsePolicy},
		{Path: "on_error.retries", Default: func(o projection.ProjectionOptions) string { return strconv.Itoa(o.OnError.Retries) },
			parse: func(p *parser, e *entry, v *yaml.Node) {
				n, err := strconv.Atoi(v.Value)
				if v.Kind != yaml.ScalarNode || err != nil || n < 1 {
					p.add(v.Line, e.label, "on_error.retries", fmt.Sprintf("must be a whole number ≥ 1, not %q (for no retries, use policy stop)", v.Value))
					return
				}
				e.pr.Options.OnError.Retries = n
			}},
		{Path: "on_error.backoff", Default: func(o projection.ProjectionOptions) string { return o.OnError.Backoff.String() },
			parse: func(p *parser, e *entry, v *yaml.Node) {
				e.pr.Options.OnError.Backoff = p.duration(v, e.label, "on_error.backoff")
			}},
		{Path: "partitions", Default: fixed("1"), parse: func(p *parser, e *entry, v *yaml.Node) {
			n, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || n < 1 || n > projection.MaxPartitions {
				p.add(v.Line, e.label, "partitions", fmt.Sprintf("must be a whole number from 1 to %d, not %q", projection.MaxPartitions, v.Value))
				return
			}
			e.pr.Options.Partitions = n
		}},
		{Path: "partition_by", Default: fixed(projection.PartitionByStream), parse: func(p *parser, e *entry, v *yaml.Node) {
			by := p.str(v, e.label, "partition_by")
			if err := projection.CheckPartitionBy(by); err != nil {
				p.add(v.Line, e.label, "partition_by", fmt.Sprintf("%q: want %s (the default) or data. followed by a field path of the event's JSON data, such as data.tenant", by, projection.PartitionByStream))
				return
			}
			e.pr.Options.PartitionBy, e.partitionBy = by, v
		}},
		{Path: "start", Default: func(o projection.ProjectionOptions) string { return o.Start.Kind.String() }, parse: parseStart},
		{Path: "schema", Default: fixed("empty"), parse: func(p *parser, e *entry, v *yaml.Node) {
			e.pr.Schema, e.pr.schemaLine = p.str(v, e.label, "schema"), textLine(v)
		}},
		{Path: "reset", Default: fixed("empty"), parse: func(p *parser, e *entry, v *yaml.Node) { e.pr.Reset = p.str(v, e.label, "reset") }},
		{Path: "version", Default: fixed("empty"), parse: func(p *parser, e *entry, v *yaml.Node) { e.pr.Version = p.str(v, e.label, "version") }},
		{Path: "on_change", Default: fixed(string(OnChangeRebuild)), parse: parseOnChange},
		{Path: "on_dependency", Default: fixed(string(OnDependencyRefuse)), parse: parseOnDependency},
		{Path: "keep_archives", Default: fixed(strconv.Itoa(DefaultKeepArchives)), parse: parseKeepArchives},
		{Path: "handlers", Default: fixed("required"), parse: func(_ *parser, e *entry, v *yaml.Node) { e.handlers = v }},
		{Path: "topics", Default: fixed("none"), parse: parseTopics},
		{Path: "batch.sql", Default: fixed("empty"), parse: func(p *parser, e *entry, v *yaml.Node) {
			e.pr.Batch, e.pr.batchLine, e.batch = p.str(v, e.label, "batch.sql"), textLine(v), v
		}},
	}
}

// parseTopics reads the topics of a projection with batch SQL: a list of distinct, non-empty
// event types.
func parseTopics(p *parser, e *entry, v *yaml.Node) {
	e.topics = v
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, e.label, "topics", "must be a list of event types")
		return
	}
	if len(v.Content) == 0 {
		p.add(v.Line, e.label, "topics", "empty; list the event types the batch SQL reads")
		return
	}
	seen := map[string]bool{}
	for i, t := range v.Content {
		key := fmt.Sprintf("topics[%d]", i)
		switch {
		case t.Kind != yaml.ScalarNode || t.Value == "":
			p.add(t.Line, e.label, key, "must be a non-empty event type")
		case seen[t.Value]:
			p.add(t.Line, e.label, key, fmt.Sprintf("event type %q given twice", t.Value))
		default:
			seen[t.Value] = true
			e.pr.Topics = append(e.pr.Topics, t.Value)
		}
	}
}

// KnownKeys returns every key the projections file accepts, sorted: the top-level key
// (projections) and the keys of a projection entry, those of a nested mapping dotted
// (batch.size). The keys under handlers are event types, not listed.
func KnownKeys() []string {
	keys := []string{"projections"}
	for _, k := range Keys() {
		keys = append(keys, k.Path)
	}
	sort.Strings(keys)
	return keys
}

func parsePolicy(p *parser, e *entry, v *yaml.Node) {
	switch k := projection.PolicyKind(p.str(v, e.label, "on_error.policy")); k {
	case projection.PolicyStop, projection.PolicyRetry, projection.PolicySkip, projection.PolicyPark:
		e.pr.Options.OnError.Policy = k
	default:
		p.add(v.Line, e.label, "on_error.policy", fmt.Sprintf("unknown policy %q; use %s, %s, %s or %s", k, projection.PolicyStop, projection.PolicyRetry, projection.PolicySkip, projection.PolicyPark))
	}
}

func parseStart(p *parser, e *entry, v *yaml.Node) {
	s := p.str(v, e.label, "start")
	switch s {
	case "":
	case projection.StartBeginning.String():
		e.pr.Options.Start = projection.Start{Kind: projection.StartBeginning}
	case projection.StartEnd.String():
		e.pr.Options.Start = projection.Start{Kind: projection.StartEnd}
	default:
		pos, err := strconv.ParseUint(s, 10, 64)
		if err != nil || pos > 1<<63-1 {
			p.add(v.Line, e.label, "start", fmt.Sprintf("must be beginning, end or a commit position, not %q", s))
			return
		}
		e.pr.Options.Start = projection.Start{Kind: projection.StartAfter, Position: projection.Position{Commit: pos, Prepare: pos}}
	}
}

// keyTree turns keys into the mappings the parser walks: for each top-level key, the function
// that reads its value, which for a dotted key's parent is a mapping of its children.
func (p *parser) keyTree(e *entry, keys []Key) map[string]func(k, v *yaml.Node) {
	top := map[string]func(k, v *yaml.Node){}
	children := map[string]map[string]func(k, v *yaml.Node){}
	for _, k := range keys {
		parse := k.parse
		parent, child, nested := strings.Cut(k.Path, ".")
		if !nested {
			top[k.Path] = func(_, v *yaml.Node) { parse(p, e, v) }
			continue
		}
		if children[parent] == nil {
			kids := map[string]func(k, v *yaml.Node){}
			children[parent] = kids
			top[parent] = func(_, v *yaml.Node) {
				if sql, ok := kids["sql"]; ok && v.Kind == yaml.ScalarNode {
					sql(nil, v) // batch: TEXT is short for batch: {sql: TEXT}
					return
				}
				p.mapping(v, e.label, parent+".", kids)
			}
		}
		children[parent][child] = func(_, v *yaml.Node) { parse(p, e, v) }
	}
	return top
}
