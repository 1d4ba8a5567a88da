package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// field is one key of a mapping in the projections file: read takes its value, or, for a key
// that holds a mapping of further keys, keys are those.
type field struct {
	read func(v *yaml.Node)
	keys fields
}

// fields are the keys a mapping of the projections file accepts. The parser checks every
// mapping against them, and KnownKeys lists them: they are the one list of the file's keys.
type fields map[string]field

// KnownKeys returns every key the projections file accepts, sorted: the top-level key
// (projections) and the keys of a projection entry, those of a nested mapping dotted
// (batch.size). The keys under handlers are event types, not listed.
func KnownKeys() []string {
	var n *yaml.Node
	p := &parser{}
	keys := append(fieldPaths("", rootFields(&n)), fieldPaths("", p.projectionFields("", &Projection{}, &n))...)
	sort.Strings(keys)
	return keys
}

func fieldPaths(prefix string, fs fields) []string {
	var out []string
	for k, f := range fs {
		if f.keys != nil {
			out = append(out, fieldPaths(prefix+k+".", f.keys)...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}

// rootFields are the top-level keys of the file; list receives the projections list.
func rootFields(list **yaml.Node) fields {
	return fields{"projections": {read: func(v *yaml.Node) { *list = v }}}
}

// projectionFields are the keys of a projection entry, reading their values into pr and
// reporting errors under label; handlers receives the handlers mapping, read afterwards.
func (p *parser) projectionFields(label string, pr *Projection, handlers **yaml.Node) fields {
	return fields{
		"name": {read: func(*yaml.Node) {}}, // read first by projectionName
		"batch": {keys: fields{
			"size":     {read: func(v *yaml.Node) { pr.Batch.Size = p.positiveInt(v, label, "batch.size") }},
			"interval": {read: func(v *yaml.Node) { pr.Batch.Interval = p.duration(v, label, "batch.interval") }},
		}},
		"on_error": {keys: fields{
			"policy": {read: func(v *yaml.Node) {
				s := p.str(v, label, "on_error.policy")
				switch s {
				case PolicyStop, PolicyRetry, PolicySkip:
					pr.OnError.Policy = s
				default:
					p.add(v.Line, label, "on_error.policy", fmt.Sprintf("unknown policy %q; use stop, retry or skip", s))
				}
			}},
			"retries": {read: func(v *yaml.Node) {
				n, err := strconv.Atoi(v.Value)
				if v.Kind != yaml.ScalarNode || err != nil || n < 0 {
					p.add(v.Line, label, "on_error.retries", fmt.Sprintf("must be a whole number ≥ 0, not %q", v.Value))
					return
				}
				pr.OnError.Retries = n
			}},
			"backoff": {read: func(v *yaml.Node) { pr.OnError.Backoff = p.duration(v, label, "on_error.backoff") }},
		}},
		"start":    {read: func(v *yaml.Node) { p.start(v, label, pr) }},
		"schema":   {read: func(v *yaml.Node) { pr.Schema = p.str(v, label, "schema"); pr.schemaLine = textLine(v) }},
		"reset":    {read: func(v *yaml.Node) { pr.Reset = p.str(v, label, "reset") }},
		"handlers": {read: func(v *yaml.Node) { *handlers = v }},
	}
}

// start reads the start key of projection pr: beginning, end or a commit position.
func (p *parser) start(v *yaml.Node, label string, pr *Projection) {
	s := p.str(v, label, "start")
	switch s {
	case "":
	case string(StartBeginning), string(StartEnd):
		pr.Start = Start{Kind: StartKind(s)}
	default:
		pos, err := strconv.ParseUint(s, 10, 64)
		if err != nil || pos > 1<<63-1 {
			p.add(v.Line, label, "start", fmt.Sprintf("must be beginning, end or a commit position, not %q", s))
			return
		}
		pr.Start = Start{Kind: StartPosition, Position: pos}
	}
}

// mapping walks the mapping n, reading each known key (descending into nested mappings) and
// reporting unknown and repeated keys; prefix is the dotted path of n within a projection.
func (p *parser) mapping(n *yaml.Node, projection, prefix string, keys fields) {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, projection, strings.TrimSuffix(prefix, "."), "must be a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := keys[k.Value]
		switch {
		case !ok:
			p.add(k.Line, projection, prefix+k.Value, "unknown key; the keys here are "+known(keys))
		case seen[k.Value]:
			p.add(k.Line, projection, prefix+k.Value, "key given twice")
		case f.keys != nil:
			seen[k.Value] = true
			p.mapping(v, projection, prefix+k.Value+".", f.keys)
		default:
			seen[k.Value] = true
			f.read(v)
		}
	}
}

func known(keys fields) string {
	ks := make([]string, 0, len(keys))
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
