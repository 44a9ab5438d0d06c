package charge

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kyapay/kyapay-go/kyapay"
)

var fuzzSeeds = []string{
	`{"amountCharged":"0.01","remainingBalance":"4.99","transactionId":"tx"}`,
	`{"amountCharged":0.01,"transactionId":123}`,
	`{"amountCharged":"1e3"}`,
	`{"amountCharged":null}`,
	`{}`, `null`, `[]`, `"x"`, ``, ` {`, `{"a":`,
	`{"isValid":true,"validationError":null,"remainingBalance":"1"}`,
	`{"isValid":false,"validationError":{"x":[1,2]}}`,
	`{"data":[{"tokenId":"t","chargeId":1,"value":"0.01","chargedAt":"2025-01-01T00:00:00Z"}],"nextPageCursor":"n"}`,
	`{"charges":[{"value":"0.01","chargedAt":null}]}`,
	`{"code":"PAYMENT_ERROR","message":"Charge amount exceeds token value"}`,
	`{"code":"VALIDATION_ERROR","message":"m","details":{"f":{"message":"x"},"g":"y","h":3}}`,
	`{"error":"Invalid Pay token ` + testToken + `"}`,
	`{"code":"` + testKey + `","message":"` + testToken[:40] + `"}`,
	"<html>\x00\r\n\xff</html>",
}

// FuzzDecodeResponse runs every response decoder on arbitrary bodies. They
// must never panic, and what they produce must be consistent.
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := decodeReceipt(body); err == nil {
			if back, err := kyapay.ParseAmount(r.AmountCharged.String()); err != nil || back != r.AmountCharged {
				t.Fatalf("amount %s does not round-trip", r.AmountCharged)
			}
			if !r.HasRemainingBalance && !r.RemainingBalance.IsZero() {
				t.Fatal("balance set without HasRemainingBalance")
			}
		}
		sc := scrubber{token: testToken, key: testKey}
		if in, err := decodeIntrospection(body, sc); err == nil {
			if leakedPiece(string(body), testToken, testKey) == "" && !strings.Contains(string(body), `\`) &&
				!strings.Contains(string(body), testKey[:secretProbe]) && !strings.Contains(string(body), testToken[:secretProbe]) &&
				!strings.Contains(string(body), "eyJ") && string(in.Raw) != string(body) {
				t.Fatalf("Raw %s differs from the body %s with nothing to scrub", in.Raw, body)
			}
			if !json.Valid(in.Raw) {
				t.Fatalf("Raw %s is not valid JSON", in.Raw)
			}
			var v any
			_ = json.Unmarshal(in.Raw, &v)
			if p := leakedPiece(string(in.Raw)+fmt.Sprint(v), testToken, testKey); p != "" {
				t.Fatalf("Raw %s leaks %q", in.Raw, p)
			}
			checkClean(t, "validationError", in.ValidationError, maxMessageLen)
		}
		if p, err := decodeChargesPage(body); err == nil {
			for _, c := range p.Charges {
				if _, err := kyapay.ParseAmount(c.Amount.String()); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// FuzzDecodeReceiptFast checks that the reflection-free receipt decoder
// agrees with encoding/json whenever it does not give up.
func FuzzDecodeReceiptFast(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		` { "amountCharged" : "0.01" , "remainingBalance":null,"transactionId":"t"} `,
		`{"amountCharged":"1","amountCharged":null}`,
		`{"amountCharged":"1","AmountCharged":"2"}`,
		`{"x":"y","amountCharged":"2","transactionId":null}`,
		`{"amountCharged":"1"}x`,
		`{"amountCharged":"1",}`,
		`{"amountCharged":"0.0000001"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeReceiptFast(body)
		if !ok {
			return
		}
		slow, err := decodeReceiptSlow(body)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refused it: %v", body, err)
		}
		if fast != slow {
			t.Fatalf("decoding %q: fast %+v, encoding/json %+v", body, fast, slow)
		}
	})
}

// FuzzDecodeError runs the error-envelope decoder on arbitrary bodies. It
// must never panic, and its output must be clipped, printable, and free of
// the token and key.
func FuzzDecodeError(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sc := scrubber{token: testToken, key: testKey}
		code, msg, details := decodeError(body, sc)
		checkClean(t, "code", code, maxCodeLen)
		checkClean(t, "message", msg, maxMessageLen)
		if len(details) > maxDetails {
			t.Fatalf("%d details", len(details))
		}
		for k, v := range details {
			checkClean(t, "details key", k, maxDetailLen)
			checkClean(t, "details value", v, maxDetailLen)
		}
		e := &Error{Op: "charge", Code: code, Message: msg, Details: details, Err: sc.wrap(errFromBytes(body))}
		checkNoSecret(t, e.Error())
		checkNoSecret(t, e.GoString())
	})
}

type errFromBytes []byte

func (e errFromBytes) Error() string { return string(e) }

func checkClean(t *testing.T, what, s string, max int) {
	t.Helper()
	if len(s) > max+len("…") {
		t.Fatalf("%s is %d bytes; max %d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not valid UTF-8: %q", what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("%s has control character %q", what, s)
		}
	}
	checkNoSecret(t, s)
}

func checkNoSecret(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, testToken) || strings.Contains(s, testKey) ||
		strings.Contains(s, testToken[:secretProbe]) || strings.Contains(s, testKey[:secretProbe]) {
		t.Fatalf("secret in %q", s)
	}
	if p := leakedPiece(s, testToken, testKey); p != "" {
		t.Fatalf("piece %q of a secret in %q", p, s)
	}
}

// FuzzScrub quotes a piece of the token or the key, cut into lines or
// words of any width with any separator, between any two texts, and checks
// that no piece of 16 bytes or more of either survives the scrubber, in
// clean's output and in an Error built from it.
func FuzzScrub(f *testing.F) {
	sigAt := uint16(strings.LastIndexByte(longToken, '.') + 1)
	f.Add("charge failed: ", " timeout", false, uint16(0), uint16(2000), uint8(64), "\n")
	f.Add("", "", false, sigAt, uint16(2000), uint8(0), "")
	f.Add("token=", ".", false, uint16(3), uint16(500), uint8(20), " ")
	f.Add("x", "y", true, uint16(5), uint16(30), uint8(16), "\t")
	f.Add("eyJ", "eyJ", false, sigAt-9, uint16(18), uint8(0), "")
	f.Fuzz(func(t *testing.T, before, after string, useKey bool, start, length uint16, width uint8, sep string) {
		secret := longToken
		if useKey {
			secret = testKey
		}
		i := int(start) % len(secret)
		j := min(len(secret), i+int(length))
		piece := secret[i:j]
		if width > 0 {
			piece = wrapAt(piece, int(width), sep)
		}
		text := before + piece + after
		sc := scrubber{token: longToken, key: testKey}
		out := sc.clean(text, 1<<20)
		if p := leakedPiece(out, longToken, testKey); p != "" {
			t.Fatalf("clean(%q) = %q leaks %q", text, out, p)
		}
		e := &Error{Op: "charge", Outcome: OutcomeDeclined, Status: 402, Code: sc.clean(before, maxCodeLen),
			Message: sc.clean(text, maxMessageLen), Details: map[string]string{sc.clean(after, maxDetailLen): sc.clean(text, maxDetailLen)}}
		for _, s := range []string{e.Error(), e.GoString()} {
			if p := leakedPiece(s, longToken, testKey); p != "" {
				t.Fatalf("error %q leaks %q", s, p)
			}
		}
	})
}

// FuzzParseRetryAfter checks that any Retry-After value gives a wait in
// [0, maxRetryAfter], and delay-seconds their exact value.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "1", "120", "99999999999999999999", "-1", "1.5", " 1", "soon", "",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("parseRetryAfter(%q) = %v, false", v, d)
			}
			return
		}
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v; out of range", v, d)
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n <= 3600 && d != time.Duration(n)*time.Second {
			t.Fatalf("parseRetryAfter(%q) = %v; want %ds", v, d, n)
		}
	})
}
