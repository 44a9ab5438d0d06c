// Package clip shortens untrusted strings (values from a token, upstream
// text, request paths) before they go into an error message or a log line,
// so that a forged 10 KB value cannot flood either.
package clip

import (
	"strconv"
	"unicode/utf8"
)

// Prefix returns the longest prefix of s of at most max bytes that ends on
// a UTF-8 rune boundary, and whether s was cut.
func Prefix(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// Marked returns s, or, when it is longer than max bytes, its Prefix
// followed by a marker giving the full length: "abc…(10240 bytes)".
func Marked(s string, max int) string {
	p, cut := Prefix(s, max)
	if !cut {
		return s
	}
	return p + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
