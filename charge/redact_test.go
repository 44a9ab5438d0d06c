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
