package declarative

import (
	"fmt"
	"sort"
	"strings"
)

// Param is a named parameter handler SQL may use, with the PostgreSQL type it is bound as.
type Param struct {
	Name string // without the leading @
	Type string // the PostgreSQL type the placeholder is cast to
	Doc  string // what the parameter holds
}

// Params lists the named parameters handler SQL may use, in documentation order.
var params = []Param{
	{"stream_id", "text", "the event's stream name (in eventsourcing, the aggregate id)"},
	{"event_type", "text", "the event type (in eventsourcing, the topic module:Class.Event)"},
	{"event_id", "text", "the event id, a UUID in canonical form"},
	{"revision", "bigint", "the event's revision in its stream, from 0"},
	{"commit_position", "bigint", "the event's $all commit position"},
	{"prepare_position", "bigint", "the event's $all prepare position"},
	{"created", "timestamptz", "when the server stored the event"},
	{"content_type", "text", "the event's content type"},
	{"data", "jsonb", "the event's data, parsed as JSON (NULL when empty)"},
	{"metadata", "jsonb", "the event's metadata, parsed as JSON (NULL when empty)"},
}

// Params returns the named parameters handler SQL may use.
func Params() []Param { return append([]Param(nil), params...) }

func paramType(name string) (string, bool) {
	for _, p := range params {
		if p.Name == name {
			return p.Type, true
		}
	}
	return "", false
}

// Statement is one SQL statement of a handler, rewritten to positional bind parameters.
type Statement struct {
	// SQL is the statement with each named parameter replaced by a typed positional
	// placeholder, e.g. "($1::jsonb)".
	SQL string
	// Args names the parameter bound to each placeholder: Args[i] is bound to $(i+1).
	Args []string
	// Line is the 1-based line of the handler's SQL text the statement starts on.
	Line int
}

// SQLError is a problem found in handler SQL text, with the line it is on (1-based, relative to
// the SQL text).
type SQLError struct {
	Line int
	Msg  string
}

// Error implements error.
func (e *SQLError) Error() string { return fmt.Sprintf("line %d of the SQL: %s", e.Line, e.Msg) }

// Parse splits handler SQL into statements at top-level semicolons and rewrites the named
// parameters (@stream_id, @data, ...) of each into positional bind parameters. Quoted strings,
// quoted identifiers, dollar-quoted strings and comments are left alone, as are operators that
// start with @ (such as @> and @@). A parameter right after an operator (a=@data) is a
// parameter; a parameter name right after an operator that ends in @ (tags <@data) is an error,
// as it reads as that operator and a column. Unknown parameter names and text without any
// statement are errors.
func Parse(sql string) ([]Statement, error) { return parse(sql, false) }

// ParseBatch splits batch SQL into statements at top-level semicolons, as Parse does. Batch SQL
// takes no parameters: a named (@data) or positional ($1) parameter is an error that points to
// the events relation, which holds the batch's events.
func ParseBatch(sql string) ([]Statement, error) { return parse(sql, true) }

// batchParamMsg is the error for a parameter in batch SQL.
func batchParamMsg(param string) string {
	return fmt.Sprintf("%s: batch SQL takes no parameters; read the batch's events from the events relation instead (one row per event, with the columns %s)", param, eventColumns())
}

func parse(sql string, batch bool) ([]Statement, error) {
	var (
		stmts       []Statement
		cur         strings.Builder
		args        []string
		index       = map[string]int{}
		line        = 1
		start       = 0      // line the current statement starts on; 0 until it has content
		unknown     []string // "@name (line n)" of each unknown parameter
		unknownLine int      // the line of the first
		depth       int
		tokenEnd    int // index just past the last quoted text or comment
	)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		if hasCode(text) {
			stmts = append(stmts, Statement{SQL: text, Args: args, Line: start})
		}
		cur.Reset()
		args = nil
		index = map[string]int{}
		start = 0
	}
	n := len(sql)
	for i := 0; i < n; {
		c := sql[i]
		if start == 0 && !isSpace(c) && c != ';' {
			start = line
		}
		switch {
		case c == '\n':
			line++
			cur.WriteByte(c)
			i++
		case c == '\'' || c == '"':
			j := scanQuoted(sql, i, c)
			line += strings.Count(sql[i:j], "\n")
			cur.WriteString(sql[i:j])
			i, tokenEnd = j, j
		case c == '-' && i+1 < n && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = n - i
			}
			cur.WriteString(sql[i : i+j])
			i += j
		case c == '/' && i+1 < n && sql[i+1] == '*':
			j := scanBlockComment(sql, i)
			line += strings.Count(sql[i:j], "\n")
			cur.WriteString(sql[i:j])
			i, tokenEnd = j, j
		case c == '$' && (i == 0 || !isIdent(sql[i-1])):
			if tag, ok := dollarTag(sql, i); ok {
				end := strings.Index(sql[i+len(tag):], tag)
				j := n
				if end >= 0 {
					j = i + len(tag) + end + len(tag)
				}
				line += strings.Count(sql[i:j], "\n")
				cur.WriteString(sql[i:j])
				i, tokenEnd = j, j
				continue
			}
			if i+1 < n && sql[i+1] >= '0' && sql[i+1] <= '9' {
				if batch {
					j := i + 1
					for j < n && sql[j] >= '0' && sql[j] <= '9' {
						j++
					}
					return nil, &SQLError{Line: line, Msg: batchParamMsg(sql[i:j])}
				}
				return nil, &SQLError{Line: line, Msg: "positional parameters ($1, ...) are not allowed; use the named parameters " + names()}
			}
			cur.WriteByte(c)
			i++
		case c == '@' && i+1 < n && isIdentStart(sql[i+1]):
			j := i + 1
			for j < n && isIdent(sql[j]) {
				j++
			}
			name := sql[i+1 : j]
			typ, ok := paramType(strings.ToLower(name))
			if op := sql[operatorStart(sql, tokenEnd, i) : i+1]; op != "@" && atOperators[op] {
				// An operator that ends in @ (a <@ b), applied to a column.
				if ok && !batch {
					return nil, &SQLError{Line: line, Msg: fmt.Sprintf(
						"%s%s is ambiguous: PostgreSQL reads the operator %s followed by a column %s; write `%s @%s` for the parameter @%s, or `%s\"%s\"` for the column",
						op, name, op, name, op, name, strings.ToLower(name), op, strings.ToLower(name))}
				}
				cur.WriteString(sql[i:j])
				i = j
				continue
			}
			// Any other @name is a parameter, even right after an operator (a=@data): PostgreSQL
			// would read such an operator and @ as one operator that does not exist.
			if batch {
				return nil, &SQLError{Line: line, Msg: batchParamMsg("@" + name)}
			}
			if !ok {
				if len(unknown) == 0 {
					unknownLine = line
				}
				unknown = append(unknown, fmt.Sprintf("@%s (line %d)", name, line))
				i = j
				continue
			}
			name = strings.ToLower(name)
			k, seen := index[name]
			if !seen {
				args = append(args, name)
				k = len(args)
				index[name] = k
			}
			fmt.Fprintf(&cur, "($%d::%s)", k, typ)
			i = j
		case c == '(':
			depth++
			cur.WriteByte(c)
			i++
		case c == ')':
			depth--
			cur.WriteByte(c)
			i++
		case c == ';' && depth <= 0:
			flush()
			depth = 0
			i++
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	if len(unknown) > 0 {
		return nil, &SQLError{Line: unknownLine, Msg: fmt.Sprintf("unknown parameter %s; the parameters are %s", strings.Join(unknown, ", "), names())}
	}
	if len(stmts) == 0 {
		return nil, &SQLError{Line: 1, Msg: "no SQL statement"}
	}
	return stmts, nil
}

func names() string {
	ns := make([]string, len(params))
	for i, p := range params {
		ns[i] = "@" + p.Name
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}

// hasCode reports whether text holds anything but whitespace and comments.
func hasCode(text string) bool {
	for i := 0; i < len(text); {
		switch {
		case isSpace(text[i]):
			i++
		case strings.HasPrefix(text[i:], "--"):
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				return false
			}
			i += j
		case strings.HasPrefix(text[i:], "/*"):
			i = scanBlockComment(text, i)
		default:
			return true
		}
	}
	return false
}

// scanQuoted returns the index just past the quoted string or identifier starting at i.
// Doubled quotes escape a quote; backslashes are only escapes in E” strings.
func scanQuoted(s string, i int, q byte) int {
	escapes := q == '\'' && i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i < 2 || !isIdent(s[i-2]))
	for j := i + 1; j < len(s); j++ {
		switch {
		case escapes && s[j] == '\\':
			j++
		case s[j] == q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// scanBlockComment returns the index just past the (possibly nested) block comment at i.
func scanBlockComment(s string, i int) int {
	depth := 0
	for j := i; j < len(s)-1; j++ {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j++
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// dollarTag returns the dollar-quote opening tag ($$ or $tag$) at i, if there is one.
func dollarTag(s string, i int) (string, bool) {
	j := i + 1
	if j < len(s) && s[j] >= '0' && s[j] <= '9' {
		return "", false
	}
	for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	if j < len(s) && s[j] == '$' {
		return s[i : j+1], true
	}
	return "", false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$' }

// isOperator reports whether c can be part of a PostgreSQL operator: PostgreSQL reads a run of
// such characters as one operator name.
func isOperator(c byte) bool { return strings.IndexByte("+-*/<>=~!@#%^&|`?", c) >= 0 }

// operatorStart returns where the run of operator characters that ends with the @ at i begins,
// not before from (the end of the last quoted text or comment).
func operatorStart(s string, from, i int) int {
	for i > from && isOperator(s[i-1]) {
		i--
	}
	return i
}

// atOperators are the operators of PostgreSQL and its common extensions that end in @:
// containment (<@, and ltree's ?<@ and ?@), text search (@@, @@@) and length (@-@). Such an
// operator directly followed by a name is the operator and a column, as PostgreSQL reads it.
var atOperators = map[string]bool{"<@": true, "@@": true, "@@@": true, "@-@": true, "?<@": true, "?@": true}
