package versions

import (
	"strings"
	"unicode"
)

// tokenKind is the kind of one lexical token of SQL text.
type tokenKind int

const (
	tokWord   tokenKind = iota // an unquoted identifier or keyword, lower-cased
	tokQuoted                  // a quoted identifier, its text without the quotes
	tokString                  // a string constant (quoted, escape or dollar-quoted), as written
	tokOther                   // a number, operator or punctuation character
)

// token is one lexical token of SQL text: comments and whitespace are not tokens.
type token struct {
	kind tokenKind
	text string
}

// tokens splits SQL text into tokens, dropping comments (-- to the end of the line, and nested
// /* */ blocks) and whitespace. Quoted identifiers, string constants and dollar-quoted strings
// are single tokens, so nothing inside them is read as SQL. Unterminated quotes run to the end
// of the text.
func tokens(sql string) []token {
	var out []token
	rs := []rune(sql)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '-' && i+1 < len(rs) && rs[i+1] == '-':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(rs) && rs[i+1] == '*':
			depth := 0
			for i < len(rs) {
				if rs[i] == '/' && i+1 < len(rs) && rs[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if rs[i] == '*' && i+1 < len(rs) && rs[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				i++
			}
		case c == '"':
			j := closing(rs, i+1, '"')
			out = append(out, token{tokQuoted, strings.ReplaceAll(string(rs[i+1:min(j, len(rs))]), `""`, `"`)})
			i = j + 1
		case c == '\'':
			j := closing(rs, i+1, '\'')
			out = append(out, token{tokString, string(rs[i:min(j+1, len(rs))])})
			i = j + 1
		case c == '$' && dollarTag(rs, i) > 0:
			n := dollarTag(rs, i)
			j := findRunes(rs, i+n, rs[i:i+n])
			if j < len(rs) {
				j += n
			}
			out = append(out, token{tokString, string(rs[i:j])})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(rs) && isIdentPart(rs[j]) {
				j++
			}
			word := strings.ToLower(string(rs[i:j]))
			// E'...' and similar prefixed string constants.
			if j < len(rs) && rs[j] == '\'' && (word == "e" || word == "b" || word == "x" || word == "n") {
				k := closing(rs, j+1, '\'')
				out = append(out, token{tokString, string(rs[i:min(k+1, len(rs))])})
				i = k + 1
				continue
			}
			out = append(out, token{tokWord, word})
			i = j
		default:
			out = append(out, token{tokOther, string(c)})
			i++
		}
	}
	return out
}

// closing returns the index of the quote q that closes a quoted text starting at i (a doubled
// quote is part of the text; a backslash escapes the next character, which only matters for
// E” strings and does no harm elsewhere for the purpose of finding the end), or len(rs).
func closing(rs []rune, i int, q rune) int {
	for i < len(rs) {
		if rs[i] == q {
			if i+1 < len(rs) && rs[i+1] == q {
				i += 2
				continue
			}
			return i
		}
		i++
	}
	return len(rs)
}

// dollarTag returns the length of the dollar-quote opening tag ($$ or $tag$) at i, or 0.
func dollarTag(rs []rune, i int) int {
	j := i + 1
	for j < len(rs) && (rs[j] == '_' || unicode.IsLetter(rs[j]) || (j > i+1 && unicode.IsDigit(rs[j]))) {
		j++
	}
	if j < len(rs) && rs[j] == '$' {
		return j - i + 1
	}
	return 0
}

// findRunes returns the index of the first occurrence of sub in rs at or after i, or len(rs).
func findRunes(rs []rune, i int, sub []rune) int {
	for ; i+len(sub) <= len(rs); i++ {
		if string(rs[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return len(rs)
}

func isIdentStart(c rune) bool { return c == '_' || unicode.IsLetter(c) }

func isIdentPart(c rune) bool {
	return c == '_' || c == '$' || unicode.IsLetter(c) || unicode.IsDigit(c)
}

// Normalize returns SQL text with comments removed and whitespace reduced to single spaces
// between tokens (none inside string constants or quoted identifiers, which stay as written),
// so that a change of layout or of a comment does not change a fingerprint.
func Normalize(sql string) string {
	var b strings.Builder
	for i, t := range tokens(sql) {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch t.kind {
		case tokQuoted:
			b.WriteString(`"` + strings.ReplaceAll(t.text, `"`, `""`) + `"`)
		default:
			b.WriteString(t.text)
		}
	}
	return b.String()
}
