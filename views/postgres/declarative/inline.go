// The inline form of batch SQL: each statement reads the batch's events from a common table
// expression events over the bound arrays, prepended to it, instead of from the temporary
// table, whose load (a heap write of every event, and its truncation at commit) costs more than
// the statement itself for simple SQL. It is used for batch SQL of one statement (several
// would each unnest the arrays again), when PostgreSQL has said that nothing but the statement
// reads events (see columnsRead), and the rewritten statement prepares.

package declarative

import (
	"fmt"
	"strings"
)

// inlineStatements returns stmts each prefixed with the common table expression events of l
// (merged into the statement's own WITH, if it has one).
func inlineStatements(stmts []Statement, l *loadPlan) []string {
	cte := "events AS (" + l.selectEvents() + ")"
	out := make([]string, len(stmts))
	for i, s := range stmts {
		lead, rest, recursive, with := leadingWith(s.SQL)
		switch {
		case !with:
			out[i] = "WITH " + cte + "\n" + s.SQL
		case recursive:
			out[i] = lead + "WITH RECURSIVE " + cte + ",\n" + rest
		default:
			out[i] = lead + "WITH " + cte + ",\n" + rest
		}
	}
	return out
}

// selectEvents is the query of every column of events (see EventColumns) over the bound
// arrays of l: the columns l does not load are NULL.
func (l *loadPlan) selectEvents() string {
	loaded := map[string]int{}
	for i, c := range l.cols {
		loaded[c.Name] = i
	}
	sel := []string{"u.seq"}
	var arrays, names []string
	for _, p := range params {
		i, ok := loaded[p.Name]
		switch {
		case !ok:
			sel = append(sel, fmt.Sprintf("NULL::%s AS %s", p.Type, p.Name))
			continue
		case p.Type == "jsonb": // travels as text
			sel = append(sel, fmt.Sprintf("u.%s::jsonb AS %s", p.Name, p.Name))
			arrays = append(arrays, fmt.Sprintf("$%d::text[]", i+1))
		default:
			sel = append(sel, "u."+p.Name)
			arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, p.Type))
		}
		names = append(names, p.Name)
	}
	return fmt.Sprintf("SELECT %s FROM unnest(%s) WITH ORDINALITY AS u(%s, seq)",
		strings.Join(sel, ", "), strings.Join(arrays, ", "), strings.Join(names, ", "))
}

// leadingWith splits sql at a leading WITH (after white space and comments): lead is what
// comes before it, rest what follows WITH or WITH RECURSIVE. with is false when sql does not
// start with WITH.
func leadingWith(sql string) (lead, rest string, recursive, with bool) {
	i := skipSpaceAndComments(sql, 0)
	if !keywordAt(sql, i, "with") {
		return "", "", false, false
	}
	lead, rest = sql[:i], sql[i+len("with"):]
	if j := skipSpaceAndComments(rest, 0); keywordAt(rest, j, "recursive") {
		return lead, rest[j+len("recursive"):], true, true
	}
	return lead, rest, false, true
}

// skipSpaceAndComments returns the index of the first byte of s at or after i that is neither
// white space nor in a comment.
func skipSpaceAndComments(s string, i int) int {
	for i < len(s) {
		switch {
		case isSpace(s[i]):
			i++
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return len(s)
			}
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			i = scanBlockComment(s, i)
		default:
			return i
		}
	}
	return i
}

// keywordAt reports whether the keyword kw (lower case) stands at s[i:], not as the start of a
// longer identifier.
func keywordAt(s string, i int, kw string) bool {
	end := i + len(kw)
	return end <= len(s) && strings.EqualFold(s[i:end], kw) && (end == len(s) || !isIdent(s[end]))
}
