package kyapay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzParsePayload holds the claims decoder to encoding/json: whatever it
// accepts, encoding/json must accept as an object, with the same values for
// the string claims it extracted. It must never panic.
func FuzzParsePayload(f *testing.F) {
	for _, m := range []map[string]any{currentPay(), currentKYA(), legacyPay()} {
		f.Add(mustJSON(m))
	}
	f.Add([]byte(`{"iss":"a\u0041\ud83d\ude00\ud800x","sub":"\/\\\"","exp":1.5}`))
	f.Add([]byte(`{"aud":["a","b"],"scope":"x y","mnr":"12","hid":{"email":null,"verified":false}}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":null}]},"iss":"x"}`))
	f.Add([]byte(`{"iss":"x","iss":"y"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		payload := bytes.Clone(data)
		var c Claims
		var st payloadState
		if err := parsePayload(payload, &c, &st); err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("accepted %q; encoding/json: %v", data, err)
		}
		for name, got := range map[string]string{"iss": c.Issuer, "sub": c.Subject, "jti": c.ID, "env": c.Env, "cur": c.Currency} {
			raw, ok := m[name]
			if !ok || string(raw) == "null" {
				if got != "" {
					t.Fatalf("%s = %q but absent in %q", name, got, data)
				}
				continue
			}
			var want string
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("%s accepted as string but encoding/json says %v (%q)", name, err, data)
			}
			if want != got {
				t.Fatalf("%s = %q; encoding/json = %q (input %q)", name, got, want, data)
			}
		}
	})
}

// FuzzVerify feeds arbitrary strings, and tokens built from arbitrary
// header and payload bytes, through the whole verifier: it must never
// panic and must never accept anything not signed by the test key.
func FuzzVerify(f *testing.F) {
	v := newTestVerifier(f, func(c *VerifierConfig) { c.CacheSize = -1 })
	good := mint(testKey, currentHeader("pay+jwt"), currentPay())
	f.Add(good, []byte(`{"alg":"ES256","kid":"k1","typ":"pay+jwt"}`), mustJSON(currentPay()))
	f.Add("a.b.c", []byte(`{}`), []byte(`{}`))
	f.Add("..", []byte(`{"alg":"none"}`), []byte(`[]`))
	enc := base64.RawURLEncoding
	f.Fuzz(func(t *testing.T, token string, hdr, payload []byte) {
		if c, err := v.Verify(context.Background(), token); err == nil && token != good {
			t.Fatalf("accepted arbitrary token %q: %+v", token, c)
		} else if err != nil && CodeOf(err) == CodeInternal {
			t.Fatalf("error without a code: %v", err)
		}
		// A structurally valid token whose signature is garbage.
		forged := enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(make([]byte, 64))
		if _, err := v.Verify(context.Background(), forged); err == nil {
			t.Fatalf("accepted forged token %q", forged)
		}
		// Correctly signed tokens with arbitrary header and payload must
		// not panic; acceptance is fine only with a valid ES256 header.
		signed := mintRaw(testKey, hdr, payload)
		if c, err := v.Verify(context.Background(), signed); err == nil {
			if c.KeyID != "k1" || c.Issuer != testIss {
				t.Fatalf("accepted %q with kid %q iss %q", signed, c.KeyID, c.Issuer)
			}
		}
	})
}

// FuzzParseValue holds the val parser to its definition: an unsigned
// 64-bit integer, or a plain decimal that ParseAmount accepts; positive
// exactly when the number is not zero. It must never panic.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"15000000", "15.000000", "0", "0.000000", "1.5", "1e6", "-1", "+1", "18446744073709551616", ".5", "5.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		positive, err := parseValue(s)
		n, uerr := strconv.ParseUint(s, 10, 64)
		a, aerr := ParseAmount(s)
		switch {
		case uerr == nil:
			if err != nil || positive != (n > 0) {
				t.Fatalf("parseValue(%q) = %v, %v; want %v, nil", s, positive, err, n > 0)
			}
		case aerr == nil && strings.Contains(s, "."):
			if err != nil || positive != !a.IsZero() {
				t.Fatalf("parseValue(%q) = %v, %v; want %v, nil", s, positive, err, !a.IsZero())
			}
		default:
			if err == nil {
				t.Fatalf("parseValue(%q) accepted", s)
			}
			if err != errNotValue {
				t.Fatalf("parseValue(%q) error = %v; want the fixed errNotValue, which quotes nothing", s, err)
			}
		}
	})
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// FuzzIsUUID holds isUUID to the canonical UUID text form.
func FuzzIsUUID(f *testing.F) {
	for _, s := range []string{"b9821893-7699-4d24-af06-803a6a16476b", "B9821893-7699-4D24-AF06-803A6A16476B", "b982189376994d24af06803a6a16476b", "kya-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isUUID(s), uuidRE.MatchString(s); got != want {
			t.Fatalf("isUUID(%q) = %v; want %v", s, got, want)
		}
	})
}

// FuzzIsEmail: whatever isEmail accepts, net/mail parses as exactly that
// address; it must never panic.
func FuzzIsEmail(f *testing.F) {
	for _, s := range []string{"buyer@example.com", "a.b+c@sub.example.co", "a@b", "a..b@example.com", ".a@example.com", "a@-x.com",
		"a@x-.com", "\"a b\"@example.com", "a@[127.0.0.1]", "ü@exämple.com", "a@b@example.com", "buyer at example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !isEmail(s) {
			return
		}
		addr, err := mail.ParseAddress(s)
		if err != nil {
			t.Fatalf("isEmail(%q) accepted; net/mail: %v", s, err)
		}
		if addr.Address != s {
			t.Fatalf("isEmail(%q) accepted; net/mail reads it as %q", s, addr.Address)
		}
	})
}
