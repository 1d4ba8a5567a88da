// Package config loads and validates Projector's configuration: the projections YAML file
// (strictly: unknown keys, duplicate names, bad durations, empty handlers and unknown SQL
// parameters are errors naming the file, line, projection and key) and the connection settings
// from the environment.
package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/views/postgres/declarative"
)

// Config is a loaded and validated projections file.
type Config struct {
	File        string       // the path it was read from
	Projections []Projection // in file order
}

// Projection is one declarative projection of the file.
type Projection struct {
	Name string
	Line int // line of the projection's entry in the file
	// Options are what the projection runs with: the batch, on_error and start keys the file
	// gives, and the projection package's defaults (projection.ProjectionOptions.WithDefaults)
	// for the rest.
	Options projection.ProjectionOptions
	Schema  string
	Reset   string
	// Version is the explicit version key: changing it rebuilds an unchanged definition.
	Version string
	// OnChange is what the daemon does when the definition differs from the serving version's.
	OnChange OnChange
	// OnDependency is what a rebuild does about relations of others that depend on the live
	// tables.
	OnDependency OnDependency
	// KeepArchives is how many archived versions keep their tables for a rollback; older
	// ones lose them at the next swap.
	KeepArchives int
	Handlers     []declarative.Handler // in file order
	// Topics and Batch are, instead of Handlers, the event types and the SQL of a projection
	// that runs once per batch (see declarative.Spec).
	Topics []string
	Batch  string
	// Compiled is the declarative projection built from the handlers, or the batch SQL. Run
	// Compiled.Runnable().
	Compiled *declarative.Projection

	handlerLines map[string]int // topic → line of the first line of its SQL text
	schemaLine   int
	batchLine    int // line of the first line of the batch SQL text
}

// Error is one problem in a configuration file.
type Error struct {
	File       string
	Line       int    // 0 when unknown
	Projection string // empty for problems outside a projection
	Key        string // dotted key path, e.g. on_error.policy
	Msg        string
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Projection != "" {
		fmt.Fprintf(&b, "projection %q: ", e.Projection)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationError holds every problem found in a configuration file.
type ValidationError struct {
	Errors []*Error
}

// Error implements error.
func (v *ValidationError) Error() string {
	msgs := make([]string, len(v.Errors))
	for i, e := range v.Errors {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the individual errors.
func (v *ValidationError) Unwrap() []error {
	errs := make([]error, len(v.Errors))
	for i, e := range v.Errors {
		errs[i] = e
	}
	return errs
}

// IsValidation reports whether err is (or wraps) a configuration error, which the CLI reports
// with exit code 2.
func IsValidation(err error) bool {
	var v *ValidationError
	var e *Error
	return errors.As(err, &v) || errors.As(err, &e)
}

// Load reads and validates the projections file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ValidationError{Errors: []*Error{{File: path, Msg: fmt.Sprintf("cannot read the projections file: %v", errors.Unwrap(err))}}}
	}
	return Parse(path, b)
}

var nameRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// Parse validates the projections file content b; file names it in errors.
func Parse(file string, b []byte) (*Config, error) {
	p := &parser{file: file}
	doc, err := decodeDocument(file, b)
	if err != nil {
		return nil, err
	}
	cfg := &Config{File: file}
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "", "", "the file must be a mapping with a projections key")
		return nil, p.result()
	}
	var list *yaml.Node
	p.mapping(root, "", "", map[string]func(k, v *yaml.Node){
		"projections": func(_, v *yaml.Node) { list = v },
	})
	switch {
	case list == nil:
		if len(p.errs) == 0 {
			p.add(root.Line, "", "projections", "missing; list the projections to run")
		}
	case list.Kind != yaml.SequenceNode:
		p.add(list.Line, "", "projections", "must be a list")
	case len(list.Content) == 0:
		p.add(list.Line, "", "projections", "the list is empty")
	default:
		seen := map[string]int{}
		for i, n := range list.Content {
			pr := p.projection(i, n)
			if pr == nil {
				continue
			}
			if pr.Name != "" {
				if first, dup := seen[pr.Name]; dup {
					p.add(pr.Line, pr.Name, "name", fmt.Sprintf("duplicate projection name (first at line %d)", first))
				} else {
					seen[pr.Name] = pr.Line
				}
			}
			cfg.Projections = append(cfg.Projections, *pr)
		}
	}
	if err := p.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type parser struct {
	file string
	errs []*Error
}

func (p *parser) add(line int, projection, key, msg string) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Projection: projection, Key: key, Msg: msg})
}

func (p *parser) result() error {
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
	return &ValidationError{Errors: p.errs}
}

// mapping walks the mapping n, calling the function of each known key and reporting unknown
// and repeated keys.
func (p *parser) mapping(n *yaml.Node, projection, prefix string, keys map[string]func(k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, projection, strings.TrimSuffix(prefix, "."), "must be a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fn, ok := keys[k.Value]
		switch {
		case !ok:
			p.add(k.Line, projection, prefix+k.Value, "unknown key; the keys here are "+known(keys))
		case seen[k.Value]:
			p.add(k.Line, projection, prefix+k.Value, "key given twice")
		default:
			seen[k.Value] = true
			fn(k, v)
		}
	}
}

func known(keys map[string]func(k, v *yaml.Node)) string {
	ks := make([]string, 0, len(keys))
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func hasKey(n *yaml.Node, key string) bool {
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == key {
			return true
		}
	}
	return false
}

// textLine is the file line of the first line of a scalar's text: the line after the indicator
// for block scalars (| and >).
func textLine(v *yaml.Node) int {
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return v.Line + 1
	}
	return v.Line
}

func (p *parser) str(v *yaml.Node, projection, key string) string {
	if v.Kind != yaml.ScalarNode {
		p.add(v.Line, projection, key, "must be a string")
		return ""
	}
	return v.Value
}

func (p *parser) positiveInt(v *yaml.Node, projection, key string) int {
	n, err := strconv.Atoi(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || n < 1 {
		p.add(v.Line, projection, key, fmt.Sprintf("must be a whole number ≥ 1, not %q", v.Value))
		return 1
	}
	return n
}

func (p *parser) duration(v *yaml.Node, projection, key string) time.Duration {
	d, err := time.ParseDuration(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || d <= 0 {
		p.add(v.Line, projection, key, fmt.Sprintf("must be a positive duration such as 10ms, 1s or 2m, not %q", v.Value))
		return time.Second
	}
	return d
}

// SQLErrors converts the errors of declarative.Projection.Check for projection pr into a
// *ValidationError naming the file, line, projection and key; other errors are returned as they
// are.
func (c *Config) SQLErrors(pr *Projection, err error) error {
	if err == nil {
		return nil
	}
	var ces []*declarative.CheckError
	var other []error
	var walk func(error)
	walk = func(err error) {
		var ce *declarative.CheckError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &ce) {
			ces = append(ces, ce)
			return
		}
		other = append(other, err)
	}
	walk(err)
	if len(other) > 0 {
		return errors.Join(other...)
	}
	v := &ValidationError{}
	for _, ce := range ces {
		e := &Error{File: c.File, Projection: pr.Name}
		msg := ce.Error()
		switch {
		case ce.Batch:
			e.Key, e.Line = "batch.sql", pr.batchLine+max(ce.Line, 1)-1
			msg = strings.TrimPrefix(msg, "batch: ")
			if ce.Statement > 0 {
				msg = "PostgreSQL cannot prepare " + msg
			}
		case ce.Topic == "":
			e.Key, e.Line = "schema", pr.schemaLine
			msg = strings.TrimPrefix(msg, "schema: ")
		default:
			e.Key = fmt.Sprintf("handlers.%q", ce.Topic)
			e.Line = pr.handlerLines[ce.Topic] + ce.Line - 1
			msg = strings.TrimPrefix(msg, fmt.Sprintf("handler %q: ", ce.Topic))
			msg = "PostgreSQL cannot prepare " + msg
		}
		e.Msg = msg
		v.Errors = append(v.Errors, e)
	}
	return v
}
