package charge

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	textclip "github.com/kyapay/kyapay-go/internal/clip"
)

// Limits on upstream text quoted in an [Error].
const (
	maxMessageLen = 300 // Message, and a non-JSON error body
	maxCodeLen    = 64  // Code
	maxDetails    = 16  // entries in Details
	maxDetailLen  = 160 // each Details key and value
)

// scrubber removes secrets from upstream text before it is put into an
// error or a returned value: every occurrence of the token and the API key
// (and of a 12-byte or longer prefix of either, a clipped quote), every
// run of secret characters (see [isSecretByte]) that shares 16 or more
// consecutive characters with the token or the key (a token wrapped at 64
// columns, split at spaces, or reduced to its signature), and anything
// shaped like a compact JWT.
type scrubber struct {
	token string
	key   string
	// prevKey is a key used before a rotation within the same call, if
	// any; it is scrubbed like key.
	prevKey string
}

// Bounds of the scrubber's work.
const (
	// pieceLen is the shortest piece of a secret that is scrubbed wherever
	// it appears inside a run of secret characters.
	pieceLen = 16
	// scrubWindow bounds how much of a text clean looks at: text beyond
	// it would be clipped anyway.
	scrubWindow = 4 << 10
)

// clean scrubs s, makes it printable single-line UTF-8 and clips it to max
// bytes.
func (s scrubber) clean(text string, max int) string {
	if text == "" {
		return ""
	}
	if len(text) > scrubWindow && scrubWindow > max {
		text = text[:scrubWindow] // printable turns a cut rune into U+FFFD
	}
	return clip(printable(s.scrub(text)), max)
}

// scrub returns text with every secret and piece of one replaced by
// "[REDACTED]". Replacements only ever put "[REDACTED]" (whose brackets are
// not secret characters) where a whole run or a whole secret was, so no
// step can join two runs into a new one.
func (s scrubber) scrub(text string) string {
	text = redactSecret(text, s.token)
	text = redactSecret(text, s.key)
	text = redactSecret(text, s.prevKey)
	text = s.redactPieces(text)
	return redactJWTs(text)
}

// redactPieces replaces every maximal run of secret characters that
// contains a piece of pieceLen bytes of the token or a key with
// "[REDACTED]". A whole run goes, not just the matching piece, so that no
// shorter neighbour of the piece (the rest of a wrapped line) survives
// either.
func (s scrubber) redactPieces(text string) string {
	if len(s.token) < pieceLen && len(s.key) < pieceLen && len(s.prevKey) < pieceLen {
		return text
	}
	var b strings.Builder
	last := 0 // text[:last] has been handled
	for i := 0; i < len(text); {
		if !isSecretByte(text[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(text) && isSecretByte(text[j]) {
			j++
		}
		if j-i >= pieceLen && s.sharesPiece(text[i:j]) {
			if b.Len() == 0 {
				b.Grow(len(text))
			}
			b.WriteString(text[last:i])
			b.WriteString(redacted)
			last = j
		}
		i = j
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// sharesPiece reports whether run holds pieceLen consecutive bytes that
// also occur in the token or a key.
func (s scrubber) sharesPiece(run string) bool {
	for p := 0; p+pieceLen <= len(run); p++ {
		w := run[p : p+pieceLen]
		if strings.Contains(s.token, w) || strings.Contains(s.key, w) || strings.Contains(s.prevKey, w) {
			return true
		}
	}
	return false
}

// isSecretByte reports whether c can be part of a token or key as far as
// piece matching goes: the base64url alphabet, dots (JWT separators), and
// the standard base64 and common key characters + / = ~.
func isSecretByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '+' || c == '/' || c == '=' || c == '~'
}

// scrubJSON returns the JSON document body with every string and object
// key scrubbed, and every number that holds a piece of a secret replaced by
// the string "[REDACTED]", so that the result is still valid JSON. Strings
// are compared decoded, so an escape such as \u0065 hides nothing. When
// nothing needs scrubbing, body itself is returned.
func (s scrubber) scrubJSON(body []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	v, changed := s.scrubValue(v)
	if !changed {
		return body, nil
	}
	return json.Marshal(v)
}

// scrubValue scrubs a decoded JSON value in place where it can and reports
// whether anything changed.
func (s scrubber) scrubValue(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		t := s.scrub(x)
		return t, t != x
	case json.Number:
		if s.scrub(string(x)) != string(x) {
			return redacted, true
		}
	case []any:
		changed := false
		for i, e := range x {
			var c bool
			x[i], c = s.scrubValue(e)
			changed = changed || c
		}
		return x, changed
	case map[string]any:
		changed := false
		out := make(map[string]any, len(x))
		for k, e := range x {
			nk := s.scrub(k)
			ne, c := s.scrubValue(e)
			changed = changed || c || nk != k
			out[nk] = ne
		}
		if changed {
			return out, true
		}
	}
	return v, false
}

// secretProbe is how much of a secret's start must match for text to be
// taken as a (possibly clipped) quote of it.
const secretProbe = 12

// redactSecret replaces every occurrence of secret in text, and of any
// prefix of it at least secretProbe bytes long (a clipped quote), with
// "[REDACTED]".
func redactSecret(text, secret string) string {
	if secret == "" {
		return text
	}
	probe := secret
	if len(probe) > secretProbe {
		probe = secret[:secretProbe]
	}
	i := strings.Index(text, probe)
	if i < 0 {
		return text
	}
	var b strings.Builder
	for i >= 0 {
		j, k := i+len(probe), len(probe)
		for j < len(text) && k < len(secret) && text[j] == secret[k] {
			j, k = j+1, k+1
		}
		b.WriteString(text[:i])
		b.WriteString(redacted)
		text = text[j:]
		i = strings.Index(text, probe)
	}
	b.WriteString(text)
	return b.String()
}

// redactJWTs replaces every substring shaped like a compact JWS or JWE, or
// a clipped piece of one ("eyJ", base64url of `{"`, followed by base64url
// characters and dots, 16 bytes or more), with "[REDACTED]", in case an
// upstream echoes a token it was sent or holds.
func redactJWTs(s string) string {
	i := strings.Index(s, "eyJ")
	if i < 0 {
		return s
	}
	var b strings.Builder
	for i >= 0 {
		j := i
		for j < len(s) && isJWTByte(s[j]) {
			j++
		}
		// Copy up to the candidate, then either the candidate or the mark.
		b.WriteString(s[:i])
		if j-i >= 16 {
			b.WriteString(redacted)
		} else {
			b.WriteString(s[i:j])
		}
		s = s[j:]
		if j == i { // cannot happen ("eyJ" is JWT bytes), but never loop
			break
		}
		i = strings.Index(s, "eyJ")
	}
	b.WriteString(s)
	return b.String()
}

func isJWTByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// printable replaces invalid UTF-8, control characters and line breaks
// with spaces or U+FFFD so that a hostile body cannot forge log lines.
func printable(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			ok = false
			break
		}
	}
	if ok {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// clip shortens s to at most max bytes (plus an ellipsis) on a rune
// boundary.
func clip(s string, max int) string {
	if p, cut := textclip.Prefix(s, max); cut {
		return p + "…"
	}
	return s
}
