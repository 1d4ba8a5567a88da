// Binding an event's fields to a handler's statements: a plan made when the projection is
// compiled, so that each event boxes only the parameters its handler uses, once each, and
// fills the statements' arguments by index.

package declarative

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/projector-dev/projector/projection"
	"github.com/projector-dev/projector/tracking"
)

// field is an event field a parameter binds (see params).
type field int

const (
	noField field = iota
	streamID
	eventType
	eventID
	revision
	commitPosition
	preparePosition
	created
	contentType
	data
	metadata
)

// fieldOf returns the field the parameter name binds, or noField for a name that is not a
// parameter.
func fieldOf(name string) field {
	switch name {
	case "stream_id":
		return streamID
	case "event_type":
		return eventType
	case "event_id":
		return eventID
	case "revision":
		return revision
	case "commit_position":
		return commitPosition
	case "prepare_position":
		return preparePosition
	case "created":
		return created
	case "content_type":
		return contentType
	case "data":
		return data
	case "metadata":
		return metadata
	}
	return noField
}

// value returns the value of f in e, as its parameter binds it.
func (f field) value(e *projection.Event) (any, error) {
	switch f {
	case streamID:
		return e.Stream, nil
	case eventType:
		return e.Type, nil
	case eventID:
		return e.ID, nil
	case revision:
		return int64(e.Revision), nil
	case commitPosition:
		return int64(e.Position.Commit), nil
	case preparePosition:
		return int64(e.Position.Prepare), nil
	case created:
		return e.Created, nil
	case contentType:
		return e.ContentType, nil
	case data:
		return jsonParam(e, e.Data, "data")
	case metadata:
		return jsonParam(e, e.Metadata, "metadata")
	}
	return nil, fmt.Errorf("field %d: no such field", f)
}

// plan binds a handler's statements by index.
type plan struct {
	fields []field // the distinct parameters the handler uses, in order of first use
	// placeholders[s][i] is the index in fields of the parameter of statement s's
	// placeholder $(i+1); nil when those are all of fields, in order.
	placeholders [][]int
}

// newPlan makes the plan of stmts. It fails only for a parameter name that binds no field,
// which Parse does not let through.
func newPlan(stmts []Statement) (plan, error) {
	var p plan
	index := map[string]int{}
	for _, s := range stmts {
		args := make([]int, len(s.Args))
		for i, name := range s.Args {
			j, ok := index[name]
			if !ok {
				f := fieldOf(name)
				if f == noField {
					return plan{}, fmt.Errorf("parameter @%s binds no event field", name)
				}
				j = len(p.fields)
				index[name] = j
				p.fields = append(p.fields, f)
			}
			args[i] = j
		}
		p.placeholders = append(p.placeholders, args)
	}
	for s, args := range p.placeholders {
		if isIdentity(args, len(p.fields)) {
			p.placeholders[s] = nil // the values themselves, shared: the statements never change them
		}
	}
	return p, nil
}

// isIdentity reports whether args is 0, 1, ..., n-1.
func isIdentity(args []int, n int) bool {
	if len(args) != n {
		return false
	}
	for i, j := range args {
		if i != j {
			return false
		}
	}
	return true
}

// values returns the values of the handler's parameters for e, in the order of p.fields.
func (p *plan) values(e *projection.Event) ([]any, error) {
	for _, v := range []uint64{e.Revision, e.Position.Commit, e.Position.Prepare} {
		if v > tracking.MaxStorablePosition {
			return nil, fmt.Errorf("%s: value %d does not fit a bigint parameter", describe(*e), v)
		}
	}
	vals := make([]any, len(p.fields))
	for i, f := range p.fields {
		v, err := f.value(e)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

// args returns the arguments of statement s, given the values of the handler's parameters.
func (p *plan) args(s int, vals []any) []any {
	idx := p.placeholders[s]
	if idx == nil {
		return vals
	}
	args := make([]any, len(idx))
	for i, j := range idx {
		args[i] = vals[j]
	}
	return args
}

// jsonParam binds b (the event's data or metadata, the parameter name) as a jsonb parameter.
func jsonParam(e *projection.Event, b []byte, name string) (any, error) {
	v, err := jsonValue(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %s is not JSON (the handler uses @%s): %w", describe(*e), name, name, err)
	}
	return v, nil
}

// jsonValue returns b as a jsonb parameter: nil (SQL NULL) when empty, the text when it is JSON.
// The text is a string, the one copy of b: every query mode of pgx sends a string as JSON text.
func jsonValue(b []byte) (any, error) {
	null, err := jsonNull(b)
	if err != nil || null {
		return nil, err
	}
	return string(b), nil
}

// jsonNull reports whether b binds a jsonb NULL (it is empty or white space), and fails when
// it is neither that nor JSON.
func jsonNull(b []byte) (bool, error) {
	if isBlank(b) {
		return true, nil
	}
	if !validJSON(b) { // what encoding/json.Valid accepts; its error names the fault
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return false, err
		}
		return false, errors.New("invalid JSON")
	}
	return false, nil
}
