package versions

import (
	"fmt"
	"strings"
)

// tableKeywords are the words after which SQL names a relation: a schema-qualified name right
// after one of them names a schema explicitly.
var tableKeywords = map[string]bool{
	"into": true, "update": true, "table": true, "index": true, "view": true, "sequence": true,
	"references": true, "truncate": true, "join": true, "type": true,
}

// skipped are the words that may stand between a table keyword and the name.
var skipped = map[string]bool{"if": true, "not": true, "exists": true, "only": true, "concurrently": true}

// Qualified lists the schema-qualified relation names in sql (as "schema.name") and the
// statements that change the search_path or a relation's schema, which a definition built in
// a shadow schema cannot use: its unqualified names resolve to the shadow there. The check is
// conservative: it looks at the names after FROM (in a SELECT or DELETE), JOIN, INTO, UPDATE,
// TABLE, INDEX, VIEW, SEQUENCE, REFERENCES, TRUNCATE, TYPE and the ON of CREATE INDEX, so a
// function call qualified with its schema passes, and a column qualified with a table name in
// other places passes too.
func Qualified(sql string) []string {
	ts := tokens(sql)
	var found []string
	// selects[d] tells whether the parenthesis level d has a SELECT or DELETE, whose FROM names
	// relations (unlike the FROM of extract(... FROM x) or IS DISTINCT FROM).
	selects := []bool{false}
	createIndex := false
	for i := 0; i < len(ts); i++ {
		t := ts[i]
		if t.kind == tokOther {
			switch t.text {
			case "(":
				selects = append(selects, false)
			case ")":
				if len(selects) > 1 {
					selects = selects[:len(selects)-1]
				}
			case ";":
				selects, createIndex = []bool{false}, false
			}
			continue
		}
		if t.kind != tokWord {
			continue
		}
		switch t.text {
		case "select", "delete":
			selects[len(selects)-1] = true
		case "search_path":
			found = append(found, "search_path")
			continue
		case "schema":
			if i > 0 && ts[i-1].kind == tokWord && ts[i-1].text == "set" {
				found = append(found, "SET SCHEMA")
			}
			continue
		}
		if t.text == "index" && i > 0 && (ts[i-1].text == "create" || ts[i-1].text == "unique") {
			createIndex = true
		}
		table := tableKeywords[t.text]
		switch {
		case t.text == "from":
			table = selects[len(selects)-1] && !(i > 0 && ts[i-1].text == "distinct")
		case t.text == "on" && createIndex:
			table, createIndex = true, false
		}
		if !table {
			continue
		}
		j := i + 1
		for j < len(ts) && ts[j].kind == tokWord && skipped[ts[j].text] {
			j++
		}
		if name, ok := qualifiedAt(ts, j); ok {
			found = append(found, name)
		}
	}
	return found
}

// qualifiedAt reports whether the tokens at j are a name followed by a dot and another name,
// and returns it as written.
func qualifiedAt(ts []token, j int) (string, bool) {
	isName := func(k int) bool { return k < len(ts) && (ts[k].kind == tokWord || ts[k].kind == tokQuoted) }
	if !isName(j) || j+2 >= len(ts) || ts[j+1].kind != tokOther || ts[j+1].text != "." || !isName(j+2) {
		return "", false
	}
	return ts[j].text + "." + ts[j+2].text, true
}

// CheckUnqualified returns an error naming every part of d that names a schema explicitly
// (see Qualified), or nil.
func (d Definition) CheckUnqualified() error {
	var problems []string
	for _, p := range d.Parts() {
		if q := Qualified(p.SQL); len(q) > 0 {
			problems = append(problems, fmt.Sprintf("%s names %s", p.Key, strings.Join(q, ", ")))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("projection %q cannot be rebuilt in a shadow schema: its SQL must name its tables without a schema (they resolve through the search_path, which a rebuild points at the shadow schema), but %s",
		d.Name, strings.Join(problems, "; "))
}
