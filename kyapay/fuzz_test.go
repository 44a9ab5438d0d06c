package kyapay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
