package charge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// leakVerbs are the fmt verbs every printable value is tried with.
var leakVerbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3v", "%-8s", "%08x"}

// assertNoSecret fails if the token, the key or a long piece of either
// appears in s.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for name, secret := range map[string]string{"API key": testKey, "token": testToken} {
		if strings.Contains(s, secret) {
			t.Errorf("%s reveals the %s: %s", what, name, s)
			continue
		}
		// Also no 20-byte window of the secret (catches clipped quotes
		// and hex or other re-encodings of a prefix).
		for i := 0; i+20 <= len(secret); i += 4 {
			if strings.Contains(s, secret[i:i+20]) {
				t.Errorf("%s reveals part of the %s (%q): %s", what, name, secret[i:i+20], s)
				break
			}
		}
		hexSecret := fmt.Sprintf("%x", secret[:16])
		if strings.Contains(strings.ToLower(s), hexSecret) {
			t.Errorf("%s reveals the %s in hex: %s", what, name, s)
		}
	}
}

// printAll formats v with every verb and through slog's JSON and text
// handlers and encoding/json, and checks no secret appears.
func printAll(t *testing.T, name string, v any) {
	t.Helper()
	for _, verb := range leakVerbs {
		assertNoSecret(t, name+" "+verb, fmt.Sprintf(verb, v))
	}
	assertNoSecret(t, name+" Sprint", fmt.Sprint(v))
	assertNoSecret(t, name+" Sprintln", fmt.Sprintln(v))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Error("charge failed", "value", v, slog.Any("any", v))
	assertNoSecret(t, name+" slog JSON", buf.String())
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Error("charge failed", "value", v)
	assertNoSecret(t, name+" slog text", buf.String())
	if b, err := json.Marshal(v); err == nil {
		assertNoSecret(t, name+" json", string(b))
	}
}

func TestAPIKeyRedaction(t *testing.T) {
	t.Parallel()
	k := APIKey(testKey)
	for _, verb := range leakVerbs {
		if got := fmt.Sprintf(verb, k); verb != "%T" && got != redacted {
			t.Errorf("Sprintf(%q, key) = %q; want %q", verb, got, redacted)
		}
	}
	if k.String() != redacted || k.GoString() != redacted {
		t.Error("String/GoString reveal the key")
	}
	if b, _ := json.Marshal(k); string(b) != `"[REDACTED]"` {
		t.Errorf("json.Marshal = %s", b)
	}
	if b, _ := k.MarshalText(); string(b) != redacted {
		t.Errorf("MarshalText = %s", b)
	}
	if k.Reveal() != testKey {
		t.Error("Reveal does not return the key")
	}
	printAll(t, "APIKey", k)
	printAll(t, "*APIKey", &k)
	printAll(t, "[]APIKey", []APIKey{k})
	printAll(t, "map", map[string]APIKey{"k": k})
}

func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	cfg := Config{BaseURL: ProductionBaseURL, APIKey: testKey, HTTPClient: &http.Client{}, RetryBackoff: noBackoff}
	printAll(t, "Config", cfg)
	printAll(t, "*Config", &cfg)
	printAll(t, "[]Config", []Config{cfg})
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	printAll(t, "*Client", c)
	printAll(t, "Client", *c)
	printAll(t, "[]*Client", []*Client{c})

	// Errors of every kind, from servers that echo the key and token in
	// every field they can.
	echo := strings.ReplaceAll(`{"code":"SECRET","message":"token SECRET key KEY","details":{"SECRET":{"message":"KEY SECRET"},"f":"SECRET"},"token":"SECRET"}`,
		"SECRET", testToken)
	echo = strings.ReplaceAll(echo, "KEY", testKey)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	handlers := map[string]func(http.ResponseWriter, *http.Request, []byte){
		"402 echo": reply(402, echo),
		"500 echo": reply(500, echo),
		"raw body echo": func(w http.ResponseWriter, _ *http.Request, body []byte) {
			w.WriteHeader(400)
			_, _ = w.Write(body)
			_, _ = io.WriteString(w, " key="+testKey)
		},
		"headers echo": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.WriteHeader(401)
			_ = r.Header.Write(w)
		},
		"2xx amount echo":  reply(200, `{"amountCharged":"`+testToken+`"}`),
		"2xx balance echo": reply(200, `{"amountCharged":"1","remainingBalance":"`+testKey+`"}`),
		"2xx garbage echo": reply(200, testToken+testKey),
		"2xx valid echo":   reply(200, `{"isValid":false,"validationError":"`+testToken+` `+testKey+`"}`),
		"hang": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		},
	}
	for name, h := range handlers {
		api := newFakeAPI(t, h)
		c := newTestClient(t, api.URL, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
		ctx := context.Background()
		_, err1 := c.Charge(ctx, testToken, kyapay.MustParseAmount("0.01"))
		_, err2 := c.ChargeServicePrice(ctx, testToken)
		in, err3 := c.Introspect(ctx, testToken)
		_, err4 := c.TokenCharges(ctx, "jti", "", 0)
		for i, err := range []error{err1, err2, err3, err4} {
			if err == nil {
				continue
			}
			printAll(t, fmt.Sprintf("%s error %d", name, i), err)
			var e *Error
			if asErr := asError(t, err); asErr != nil {
				e = asErr
				printAll(t, name+" *Error value", *e)
				for k, v := range e.Details {
					assertNoSecret(t, name+" details", k+v)
				}
			}
		}
		assertNoSecret(t, name+" introspection", in.ValidationError)
	}

	// Transport errors: refused and pre-cancelled.
	c2 := newTestClient(t, "http://"+closedAddr(t), nil)
	_, err = c2.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	printAll(t, "refused", err)
	// Config errors.
	_, err = New(Config{BaseURL: ProductionBaseURL, APIKey: testKey + "\n"})
	printAll(t, "config error", err)
}

func TestRedactJWTs(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"no tokens here", "no tokens here"},
		{"token " + testToken + " rejected", "token [REDACTED] rejected"},
		{`"eyJhbGciOiJFUzI1NiIsInR5cCI6Imt5…"`, `"[REDACTED]…"`},
		{"eyJ short", "eyJ short"},
		{"a eyJ.b eyJabc", "a eyJ.b eyJabc"},
		{"x" + testToken + "," + testToken, "x[REDACTED],[REDACTED]"},
		{"eyJ", "eyJ"},
	}
	for _, tt := range tests {
		if got := redactJWTs(tt.in); got != tt.want {
			t.Errorf("redactJWTs(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestScrubberClean(t *testing.T) {
	t.Parallel()
	sc := scrubber{token: "opaque-token-value", key: testKey}
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"  spaced\n", "spaced"},
		{"tok opaque-token-value key " + testKey, "tok [REDACTED] key [REDACTED]"},
		{"line1\nline2\r\x00end", "line1 line2  end"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{strings.Repeat("é", 200), strings.Repeat("é", 150) + "…"},
	}
	for _, tt := range tests {
		if got := sc.clean(tt.in, maxMessageLen); got != tt.want {
			t.Errorf("clean(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// longToken is shaped like a real kya-pay token (about 800 bytes, three
// base64url segments).
var longToken = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleS0xIiwidHlwIjoia3lhLXBheStqd3QifQ." +
	"eyJpc3MiOiJodHRwczovL2FwcC5za3lmaXJlLnh5eiIsInN1YiI6IjNmYTg1ZjY0LTU3MTctNDU2Mi1iM2ZjLTJjOTYzZjY2YWZhNiIsImF1ZCI6IjNmYTg1ZjY0LTU3MTctNDU2Mi1iM2ZjLTJjOTYzZjY2YWZhNyIsImV4cCI6MTc1NjAwMDAwMCwiaWF0IjoxNzU1OTk2NDAwLCJqdGkiOiIzZmE4NWY2NC01NzE3LTQ1NjItYjNmYy0yYzk2M2Y2NmFmYTgiLCJlbnYiOiJwcm9kdWN0aW9uIiwic3NpIjoiM2ZhODVmNjQtNTcxNy00NTYyLWIzZmMtMmM5NjNmNjZhZmE5IiwiYW10IjoiNSIsInZhbCI6NTAwMDAwMCwiY3VyIjoiVVNEIn0." +
	"MEUCIQDx7Wq3Hc2v3n6y5nF7zJ2kq8s9d0f1g2h3j4k5l6m7n8o9pAIgQ1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c2"

// leakedPiece returns a piece of pieceLen bytes of one of the secrets
// that occurs in s, or "".
func leakedPiece(s string, secrets ...string) string {
	for i := 0; i+pieceLen <= len(s); i++ {
		w := s[i : i+pieceLen]
		for _, sec := range secrets {
			if strings.Contains(sec, w) {
				return w
			}
		}
	}
	return ""
}

// wrapAt inserts sep every n bytes of s.
func wrapAt(s string, n int, sep string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteString(sep)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// secretShapes are the ways an upstream has been seen, or could be
// expected, to quote a token or key in its answer.
func secretShapes(token, key string) map[string]string {
	sig := token[strings.LastIndexByte(token, '.')+1:]
	return map[string]string{
		"whole":               token,
		"wrapped at 64":       wrapAt(token, 64, "\n"),
		"wrapped at 64 CRLF":  wrapAt(token, 64, "\r\n"),
		"split at spaces":     wrapAt(token, 20, " "),
		"split at tabs":       wrapAt(token, 17, "\t"),
		"signature only":      sig,
		"signature glued":     "sig=" + sig + ";",
		"signature in quotes": `'` + sig + `'`,
		"payload only":        strings.Split(token, ".")[1],
		"middle piece":        token[100:116],
		"piece across a dot":  token[strings.IndexByte(token, '.')-8 : strings.IndexByte(token, '.')+9],
		"key":                 key,
		"key tail":            key[len(key)-16:],
		"key wrapped":         wrapAt(key, 16, " "),
		"token and key":       token + key,
	}
}

func TestScrubberPieces(t *testing.T) {
	t.Parallel()
	sc := scrubber{token: longToken, key: testKey}
	for name, shape := range secretShapes(longToken, testKey) {
		text := "charge failed for " + shape + ": network timeout"
		got := sc.clean(text, 1<<20)
		if p := leakedPiece(got, longToken, testKey); p != "" {
			t.Errorf("%s: %q leaks %q", name, got, p)
		}
		if !strings.Contains(got, redacted) || !strings.HasPrefix(got, "charge failed for ") || !strings.HasSuffix(got, ": network timeout") {
			t.Errorf("%s: %q; want the secret redacted and the rest kept", name, got)
		}
	}
	// Short pieces and unrelated runs are kept.
	for _, keep := range []string{
		"PAYMENT_ERROR: Charge amount exceeds token value",
		"request 3fa85f64-5717-4562-b3fc-2c963f66afa6 failed",
		"short " + longToken[200:215] + " piece",
		"https://api.skyfire.xyz/api/v1/tokens/charge",
	} {
		if got := sc.clean(keep, 1<<20); got != keep {
			t.Errorf("clean(%q) = %q; want it unchanged", keep, got)
		}
	}
}

// TestErrorsScrubPieces drives the client against servers that echo the
// token and the key in each shape, in every part of an answer, and checks
// that no 16-byte piece reaches Error(), %#v, a log line or Introspection.
func TestErrorsScrubPieces(t *testing.T) {
	t.Parallel()
	for name, shape := range secretShapes(longToken, testKey) {
		q, _ := json.Marshal(shape)
		js := string(q)
		bodies := map[string]struct {
			status int
			body   string
		}{
			"message":     {402, `{"code":"PAYMENT_ERROR","message":` + js + `}`},
			"code":        {400, `{"code":` + js + `}`},
			"details":     {422, `{"code":"VALIDATION_ERROR","details":{"token":{"message":` + js + `},` + js + `:"x"}}`},
			"nested":      {401, `{"error":{"code":"NOT_AUTHORIZED","message":` + js + `}}`},
			"plain text":  {500, "upstream said: " + shape},
			"bad 2xx":     {200, `{"amountCharged":` + js + `}`},
			"valid false": {200, `{"isValid":false,"validationError":` + js + `,"echo":{"t":[` + js + `]}}`},
		}
		for part, b := range bodies {
			api := newFakeAPI(t, reply(b.status, b.body))
			c := newTestClient(t, api.URL, nil)
			ctx := context.Background()
			_, err1 := c.Charge(ctx, longToken, kyapay.MustParseAmount("0.01"))
			in, err2 := c.Introspect(ctx, longToken)
			for _, err := range []error{err1, err2} {
				if err == nil {
					continue
				}
				var buf bytes.Buffer
				slog.New(slog.NewTextHandler(&buf, nil)).Error("charge failed", "error", err)
				for _, out := range []string{err.Error(), fmt.Sprintf("%#v", err), fmt.Sprintf("%+v", err), buf.String()} {
					if p := leakedPiece(out, longToken, testKey); p != "" {
						t.Errorf("%s in %s: %q leaks %q", name, part, out, p)
					}
				}
			}
			if err2 == nil {
				if p := leakedPiece(in.ValidationError+string(in.Raw), longToken, testKey); p != "" {
					t.Errorf("%s in %s: introspection %q / %s leaks %q", name, part, in.ValidationError, in.Raw, p)
				}
				var raw any
				if err := json.Unmarshal(in.Raw, &raw); err != nil {
					t.Errorf("%s in %s: Raw is not JSON: %v", name, part, err)
				}
				if p := leakedPiece(fmt.Sprint(raw), longToken, testKey); p != "" {
					t.Errorf("%s in %s: decoded Raw leaks %q", name, part, p)
				}
			}
		}
	}
}

func TestScrubJSON(t *testing.T) {
	t.Parallel()
	sc := scrubber{token: longToken, key: testKey}
	sig := longToken[strings.LastIndexByte(longToken, '.')+1:]
	tests := []struct{ in, want string }{
		{`{"isValid":true,"n":1.5}`, `{"isValid":true,"n":1.5}`}, // untouched, byte for byte
		{`{"isValid":false,"e":"` + sig + `"}`, `{"e":"[REDACTED]","isValid":false}`},
		// An escape hides nothing: the string is compared decoded.
		{`{"e":"\u0065` + sig[1:] + `"}`, `{"e":"[REDACTED]"}`},
		{`{"a":["x ` + sig[:20] + ` y"]}`, `{"a":["x [REDACTED] y"]}`},
		{`{"` + sig + `":1}`, `{"[REDACTED]":1}`},
		{`{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
	}
	for _, tt := range tests {
		got, err := sc.scrubJSON([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("scrubJSON(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	// A number that is a piece of a secret becomes a string.
	digits := scrubber{token: "x.12345678901234567890.y"}
	if got, _ := digits.scrubJSON([]byte(`{"n":12345678901234567890}`)); string(got) != `{"n":"[REDACTED]"}` {
		t.Errorf("number piece: got %s", got)
	}
}
