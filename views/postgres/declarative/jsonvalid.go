// A JSON validity check that accepts exactly what encoding/json.Valid accepts, in one pass
// without a state function per byte.

package declarative

import "encoding/json"

// maxTrackedDepth is how deeply nested arrays and objects validJSON follows itself; deeper
// text is left to encoding/json (and its own nesting limit).
const maxTrackedDepth = 64

// validJSON reports whether b is one JSON value, with white space around it allowed, as
// encoding/json.Valid does (which, like it, does not check that strings are UTF-8).
func validJSON(b []byte) bool {
	var objects uint64 // bit d: the container at depth d+1 is an object (else an array)
	depth := 0
	i := skipJSONSpace(b, 0)
	for { // at i, a value is expected
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth == maxTrackedDepth {
				return json.Valid(b)
			}
			isObject, end := c == '{', byte(']')
			if isObject {
				objects |= 1 << depth
				end = '}'
			} else {
				objects &^= 1 << depth
			}
			depth++
			i = skipJSONSpace(b, i+1)
			if i < len(b) && b[i] == end {
				depth--
				i++
				break // an empty container is a value that ended
			}
			if isObject {
				if i = jsonKey(b, i); i < 0 {
					return false
				}
			}
			continue // its first value follows
		case c == '"':
			i = jsonString(b, i)
		case c == '-' || ('0' <= c && c <= '9'):
			i = jsonNumber(b, i)
		case c == 't':
			i = jsonLiteral(b, i, "true")
		case c == 'f':
			i = jsonLiteral(b, i, "false")
		case c == 'n':
			i = jsonLiteral(b, i, "null")
		default:
			return false
		}
		if i < 0 {
			return false
		}
		// A value ended at i: close containers, or go on to the next value after a comma.
		next := false
		for !next {
			i = skipJSONSpace(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			inObject := objects>>(depth-1)&1 == 1
			switch c := b[i]; {
			case c == ',':
				i = skipJSONSpace(b, i+1)
				if inObject {
					if i = jsonKey(b, i); i < 0 {
						return false
					}
				}
				next = true
			case (inObject && c == '}') || (!inObject && c == ']'):
				depth--
				i++
			default:
				return false
			}
		}
	}
}

// skipJSONSpace returns the index of the first byte of b from i on that is not JSON white
// space, or len(b).
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonKey checks an object's key and its colon at i, and returns the index of what follows
// them (white space skipped), or -1.
func jsonKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = jsonString(b, i); i < 0 {
		return -1
	}
	if i = skipJSONSpace(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipJSONSpace(b, i+1)
}

// jsonString checks the string that starts at b[i] (a quote), and returns the index after it,
// or -1.
func jsonString(b []byte, i int) int {
	for i++; i < len(b); {
		for i < len(b) && plainInString[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
	return -1
}

// jsonNumber checks the number that starts at b[i], and returns the index after it, or -1.
func jsonNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = skipDigits(b, i)
	}
	return i
}

// jsonLiteral checks that lit (true, false or null) is at b[i], and returns the index after
// it, or -1.
func jsonLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// plainInString tells the bytes that stand for themselves in a JSON string: neither a quote,
// a backslash nor a control character.
var plainInString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}
