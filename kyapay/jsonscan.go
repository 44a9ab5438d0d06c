package kyapay

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a strict, allocation-light reader of one JSON text held in a
// string. Strings without escapes are returned as substrings of the input,
// so decoding a token's claims costs almost no allocations. It accepts a
// subset of what encoding/json accepts: in addition it refuses invalid
// UTF-8 inside strings and nesting deeper than maxDepth. The differential
// fuzz test FuzzParsePayload holds it to that contract.
type scanner struct {
	s string
	i int
}

const maxDepth = 32

var errSyntax = errors.New("invalid JSON")

func (p *scanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (p *scanner) peek() byte {
	p.ws()
	if p.i >= len(p.s) {
		return 0
	}
	return p.s[p.i]
}

// end reports an error unless only white space remains.
func (p *scanner) end() error {
	p.ws()
	if p.i != len(p.s) {
		return errSyntax
	}
	return nil
}

// objStart consumes the '{' that opens an object.
func (p *scanner) objStart() error {
	if p.peek() != '{' {
		return errSyntax
	}
	p.i++
	return nil
}

// objNext moves to the next member of an object opened by objStart. It
// returns the member's key with more=true, positioned at the value, or
// more=false after consuming the closing '}'. first must start true.
func (p *scanner) objNext(first *bool) (key string, more bool, err error) {
	c := p.peek()
	if c == '}' {
		p.i++
		return "", false, nil
	}
	if !*first {
		if c != ',' {
			return "", false, errSyntax
		}
		p.i++
		c = p.peek()
	}
	*first = false
	if c != '"' {
		return "", false, errSyntax
	}
	key, err = p.str()
	if err != nil {
		return "", false, err
	}
	if p.peek() != ':' {
		return "", false, errSyntax
	}
	p.i++
	p.ws()
	return key, true, nil
}

// arrStart consumes the '[' that opens an array.
func (p *scanner) arrStart() error {
	if p.peek() != '[' {
		return errSyntax
	}
	p.i++
	return nil
}

// arrNext moves to the next element of an array opened by arrStart,
// returning false after consuming the closing ']'.
func (p *scanner) arrNext(first *bool) (bool, error) {
	c := p.peek()
	if c == ']' {
		p.i++
		return false, nil
	}
	if !*first {
		if c != ',' {
			return false, errSyntax
		}
		p.i++
		p.ws()
	}
	*first = false
	return true, nil
}

// isNull consumes a null literal if one is next.
func (p *scanner) isNull() bool {
	p.ws()
	if strings.HasPrefix(p.s[p.i:], "null") {
		p.i += 4
		return true
	}
	return false
}

// str reads a JSON string. Without escapes it is a substring of the input.
func (p *scanner) str() (string, error) {
	if p.peek() != '"' {
		return "", errSyntax
	}
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			return v, nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return "", errSyntax
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && n == 1 {
				return "", errSyntax
			}
			p.i += n
		}
	}
	return "", errSyntax
}

// strEscaped finishes a string that contains escapes, from start (just
// after the opening quote), building a new string.
func (p *scanner) strEscaped(start int) (string, error) {
	var b strings.Builder
	b.Grow(p.i - start + 16)
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", errSyntax
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", errSyntax
				}
				if utf16.IsSurrogate(r) {
					// A surrogate must pair with a following \u escape;
					// a lone one becomes U+FFFD, as in encoding/json.
					r2 := utf8.RuneError
					if strings.HasPrefix(p.s[p.i:], `\u`) {
						save := p.i
						p.i += 2
						if x, ok := p.hex4(); ok {
							if d := utf16.DecodeRune(r, x); d != utf8.RuneError {
								r2 = d
							} else {
								p.i = save
							}
						} else {
							return "", errSyntax
						}
					}
					r = r2
				}
				b.WriteRune(r)
			default:
				return "", errSyntax
			}
		case c < 0x20:
			return "", errSyntax
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.i++
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && n == 1 {
				return "", errSyntax
			}
			b.WriteString(p.s[p.i : p.i+n])
			p.i += n
		}
	}
	return "", errSyntax
}

func (p *scanner) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}

// num reads a JSON number and returns its text.
func (p *scanner) num() (string, error) {
	p.ws()
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		p.digits()
	default:
		return "", errSyntax
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return "", errSyntax
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return "", errSyntax
		}
	}
	return p.s[start:p.i], nil
}

func (p *scanner) digits() int {
	n := 0
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// boolean reads true or false.
func (p *scanner) boolean() (bool, error) {
	p.ws()
	switch {
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return false, nil
	}
	return false, errSyntax
}

// skip reads and discards any value, returning its extent.
func (p *scanner) skip(depth int) (start, end int, err error) {
	if depth > maxDepth {
		return 0, 0, errSyntax
	}
	c := p.peek()
	start = p.i
	switch {
	case c == '{':
		p.i++
		first := true
		for {
			_, more, err := p.objNext(&first)
			if err != nil {
				return 0, 0, err
			}
			if !more {
				break
			}
			if _, _, err := p.skip(depth + 1); err != nil {
				return 0, 0, err
			}
		}
	case c == '[':
		p.i++
		first := true
		for {
			more, err := p.arrNext(&first)
			if err != nil {
				return 0, 0, err
			}
			if !more {
				break
			}
			if _, _, err := p.skip(depth + 1); err != nil {
				return 0, 0, err
			}
		}
	case c == '"':
		if _, err := p.str(); err != nil {
			return 0, 0, err
		}
	case c == 't' || c == 'f':
		if _, err := p.boolean(); err != nil {
			return 0, 0, err
		}
	case c == 'n':
		if !p.isNull() {
			return 0, 0, errSyntax
		}
	default:
		if _, err := p.num(); err != nil {
			return 0, 0, err
		}
	}
	return start, p.i, nil
}

// strOrNum reads a JSON string's value or a JSON number's text: claims
// such as mnr, val, ver and amounts appear both ways in the two claim
// generations.
func (p *scanner) strOrNum() (string, error) {
	if p.peek() == '"' {
		return p.str()
	}
	return p.num()
}

// int64Value reads an integer that is a JSON number or a string of digits.
func (p *scanner) int64Value() (int64, error) {
	text, err := p.strOrNum()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, errNotCount // strconv's error would quote the text
	}
	return n, nil
}
