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

	"github.com/projector-dev/projector/views/postgres/declarative"
)

// Defaults applied to keys a projection leaves out.
const (
	DefaultBatchSize     = 1000
	DefaultBatchInterval = 10 * time.Millisecond
	DefaultPolicy        = PolicyStop
	DefaultRetries       = 5
	DefaultBackoff       = time.Second
)

// The error policies of a projection.
const (
	PolicyStop  = "stop"  // halt the projection on a poison event and report it
	PolicyRetry = "retry" // retry the event with capped exponential backoff, then stop
	PolicySkip  = "skip"  // write the event to the dead-letter table and go on
)

// Config is a loaded and validated projections file.
type Config struct {
	File        string       // the path it was read from
	Projections []Projection // in file order
}

// Projection is one declarative projection of the file.
type Projection struct {
	Name     string
	Line     int // line of the projection's entry in the file
	Batch    Batch
	OnError  OnError
	Start    Start
	Schema   string
	Reset    string
	Handlers []declarative.Handler // in file order
	// Compiled is the declarative projection built from the handlers.
	Compiled *declarative.Projection

	handlerLines map[string]int // topic → line of the first line of its SQL text
	schemaLine   int
}

// Batch bounds the events committed in one transaction.
type Batch struct {
	Size     int           // at most this many events per transaction
	Interval time.Duration // at most this long between the first event of a batch and its commit
}

// OnError is a projection's error policy for events its handlers fail on.
type OnError struct {
	Policy  string        // PolicyStop, PolicyRetry or PolicySkip
	Retries int           // attempts before the policy gives up (retry) or dead-letters (skip)
	Backoff time.Duration // first backoff; doubles per attempt
}

// StartKind tells where a projection with no tracking row starts.
type StartKind string

// Where a projection starts on its first run.
const (
	StartBeginning StartKind = "beginning" // the beginning of $all
	StartEnd       StartKind = "end"       // the end of $all: only events written from now on
	StartPosition  StartKind = "position"  // just after a given commit position
)

// Start is where a projection with no tracking row starts.
type Start struct {
	Kind     StartKind
	Position uint64 // for StartPosition
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
	p.mapping(root, "", "", rootFields(&list))
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

func (p *parser) projection(i int, n *yaml.Node) *Projection {
	pr := &Projection{
		Line:    n.Line,
		Batch:   Batch{Size: DefaultBatchSize, Interval: DefaultBatchInterval},
		OnError: OnError{Policy: DefaultPolicy, Retries: DefaultRetries, Backoff: DefaultBackoff},
		Start:   Start{Kind: StartBeginning},
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "", fmt.Sprintf("projections[%d]", i), "must be a mapping with name and handlers")
		return nil
	}
	// Find the name first, so every other error can name the projection.
	label := p.projectionName(i, n, pr)
	var handlers *yaml.Node
	p.mapping(n, label, "", p.projectionFields(label, pr, &handlers))
	p.handlers(n, handlers, label, pr)
	if pr.Name == "" {
		if !hasKey(n, "name") {
			p.add(n.Line, label, "name", "missing; every projection needs a name (its tracking key)")
		}
		return nil
	}
	if len(pr.Handlers) > 0 && len(pr.Handlers)*2 == len(handlers.Content) {
		c, err := declarative.New(declarative.Spec{Name: pr.Name, Schema: pr.Schema, Reset: pr.Reset, Handlers: pr.Handlers})
		if err != nil {
			p.add(n.Line, label, "handlers", err.Error())
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
		p.add(n.Line, label, "handlers", "missing; map each event type to the SQL it runs")
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
		if ce.Topic == "" {
			e.Key, e.Line = "schema", pr.schemaLine
			msg = strings.TrimPrefix(msg, "schema: ")
		} else {
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
