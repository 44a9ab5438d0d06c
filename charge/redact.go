package charge

import (
	"strings"
	"unicode/utf8"
)

// Limits on upstream text quoted in an [Error].
const (
	maxMessageLen = 300 // Message, and a non-JSON error body
	maxCodeLen    = 64  // Code
	maxDetails    = 16  // entries in Details
	maxDetailLen  = 160 // each Details key and value
)

// scrubber removes secrets from upstream text before it is put into an
// error: every occurrence of the token and the API key, and anything that
// looks like a compact JWT.
type scrubber struct {
	token string
	key   string
}

// clean scrubs s, makes it printable single-line UTF-8 and clips it to max
// bytes.
func (s scrubber) clean(text string, max int) string {
	if text == "" {
		return ""
	}
	text = redactSecret(text, s.token)
	text = redactSecret(text, s.key)
	text = redactJWTs(text)
	return clip(printable(text), max)
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
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
