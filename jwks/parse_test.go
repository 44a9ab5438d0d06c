package jwks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseSet(t *testing.T) {
	good := genKey(t)
	other := genKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	rsaJWK := map[string]any{
		"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig",
		"n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes()),
	}
	with := func(kid string, pub *ecdsa.PublicKey, changes map[string]any) map[string]any {
		m := ecJWK(t, kid, pub)
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	gx, gy := coords(t, &good.PublicKey)
	// A point that is not on the curve: y+1.
	yb, _ := base64.RawURLEncoding.DecodeString(gy)
	yb[len(yb)-1]++
	offCurveY := b64(yb)

	tests := []struct {
		name     string
		data     string
		wantKids []string // usable kids, all of them for good's key unless listed in otherKids
		skipped  int
		wantErr  bool
	}{
		{name: "one good key", data: string(setJSON(t, with("a", &good.PublicKey, nil))), wantKids: []string{"a"}},
		{name: "observed Skyfire shape: no use", data: string(setJSON(t, with("a", &good.PublicKey, map[string]any{"use": nil}))), wantKids: []string{"a"}},
		{name: "alg absent", data: string(setJSON(t, with("a", &good.PublicKey, map[string]any{"alg": nil}))), wantKids: []string{"a"}},
		{name: "key_ops verify", data: string(setJSON(t, with("a", &good.PublicKey, map[string]any{"use": nil, "key_ops": []string{"verify"}}))), wantKids: []string{"a"}},
		{name: "padded base64", data: string(setJSON(t, with("a", &good.PublicKey, map[string]any{"x": gx + "=", "y": gy + "="}))), wantKids: []string{"a"}},
		{name: "extra members ignored", data: string(setJSON(t, with("a", &good.PublicKey, map[string]any{"x5t": "abc", "ext": true}))), wantKids: []string{"a"}},
		{name: "whitespace", data: "\n { \"keys\" : [ " + string(mustJSON(t, with("a", &good.PublicKey, nil))) + " ] } \n", wantKids: []string{"a"}},
		{name: "RSA key skipped", data: string(setJSON(t, rsaJWK, with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "P-384 skipped", data: string(setJSON(t, ecJWK(t, "p384", &p384.PublicKey), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "P-384 point labelled P-256 skipped", data: string(setJSON(t, with("p", &p384.PublicKey, map[string]any{"crv": "P-256"}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "alg RS256 skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"alg": "RS256"}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "alg ES384 skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"alg": "ES384"}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "alg not a string skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"alg": 1}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "use enc skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"use": "enc"}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "key_ops without verify skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"key_ops": []string{"sign"}}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "kty lowercase skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"kty": "ec"}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "member names are case-sensitive", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"kty": nil, "KTY": "EC"}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "missing kid skipped", data: string(setJSON(t, with("", &other.PublicKey, nil), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "empty kid skipped", data: string(setJSON(t, with("", &other.PublicKey, map[string]any{"kid": ""}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "kid not a string skipped", data: string(setJSON(t, with("", &other.PublicKey, map[string]any{"kid": 7}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "duplicate kid skipped", data: string(setJSON(t, with("d", &other.PublicKey, nil), with("d", &good.PublicKey, nil), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 2},
		{name: "duplicate kid with unusable twin skipped", data: string(setJSON(t, with("d", &other.PublicKey, map[string]any{"use": "enc"}), with("d", &good.PublicKey, nil), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 2},
		{name: "off-curve point skipped", data: string(setJSON(t, with("b", &good.PublicKey, map[string]any{"y": offCurveY}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "zero point skipped", data: string(setJSON(t, with("b", &good.PublicKey, map[string]any{"x": b64(make([]byte, 32)), "y": b64(make([]byte, 32))}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "bad base64 skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"x": "!!!" + gx[3:]}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "standard base64 alphabet skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"x": strings.Repeat("+", 43)}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "short coordinate skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"x": gx[:42]}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "long coordinate skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"x": "AAAA" + gx}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "coordinate not a string skipped", data: string(setJSON(t, with("b", &other.PublicKey, map[string]any{"y": 12}), with("a", &good.PublicKey, nil))), wantKids: []string{"a"}, skipped: 1},
		{name: "element not an object skipped", data: `{"keys":[1,"x",null,[],` + string(mustJSON(t, with("a", &good.PublicKey, nil))) + `]}`, wantKids: []string{"a"}, skipped: 4},
		{name: "empty set error", data: `{"keys":[]}`, wantErr: true},
		{name: "only unusable keys error", data: string(setJSON(t, rsaJWK)), wantErr: true, skipped: 1},
		{name: "garbage error", data: "<html>403 Forbidden</html>", wantErr: true},
		{name: "empty input error", data: "", wantErr: true},
		{name: "null error", data: "null", wantErr: true},
		{name: "array error", data: "[" + string(mustJSON(t, with("a", &good.PublicKey, nil))) + "]", wantErr: true},
		{name: "no keys member error", data: `{"kty":"EC"}`, wantErr: true},
		{name: "keys null error", data: `{"keys":null}`, wantErr: true},
		{name: "keys not an array error", data: `{"keys":{"a":1}}`, wantErr: true},
		{name: "trailing garbage error", data: string(setJSON(t, with("a", &good.PublicKey, nil))) + "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, skipped, err := ParseSet([]byte(tt.data))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got keys %v, want error", keys)
				}
				if !errors.Is(err, ErrInvalidSet) {
					t.Errorf("got error %v; want it to wrap ErrInvalidSet", err)
				}
				if !strings.HasPrefix(err.Error(), "jwks: ") {
					t.Errorf("error %q lacks the jwks: prefix", err)
				}
				if keys != nil {
					t.Errorf("got keys %v with an error", keys)
				}
			} else if err != nil {
				t.Fatalf("ParseSet: %v", err)
			}
			if skipped != tt.skipped {
				t.Errorf("got skipped = %d; want %d", skipped, tt.skipped)
			}
			if len(keys) != len(tt.wantKids) {
				t.Errorf("got %d keys; want %v", len(keys), tt.wantKids)
			}
			for _, kid := range tt.wantKids {
				if !sameKey(keys[kid], &good.PublicKey) {
					t.Errorf("key %q: got %v; want the generated key", kid, keys[kid])
				}
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// variant is one way the model generator renders a key; ok says whether
// ParseSet must accept it.
type variant struct {
	name string
	ok   bool
	edit func(m map[string]any)
}

var variants = []variant{
	{"plain", true, func(map[string]any) {}},
	{"no alg", true, func(m map[string]any) { delete(m, "alg") }},
	{"no use", true, func(m map[string]any) { delete(m, "use") }},
	{"key_ops", true, func(m map[string]any) { delete(m, "use"); m["key_ops"] = []string{"verify", "sign"} }},
	{"alg RS256", false, func(m map[string]any) { m["alg"] = "RS256" }},
	{"use enc", false, func(m map[string]any) { m["use"] = "enc" }},
	{"crv P-384", false, func(m map[string]any) { m["crv"] = "P-384" }},
	{"kty RSA", false, func(m map[string]any) { m["kty"] = "RSA" }},
	{"no kid", false, func(m map[string]any) { delete(m, "kid") }},
	{"off curve", false, func(m map[string]any) { m["x"], m["y"] = m["y"], m["x"] }},
	{"bad base64", false, func(m map[string]any) { m["y"] = "*" + m["y"].(string)[1:] }},
	{"no x", false, func(m map[string]any) { delete(m, "x") }},
}

// TestParseSetModel is a differential test against a model: random sets mix
// valid and invalid renderings of generated keys, some sharing kids, and
// ParseSet must return exactly the valid ones with unique kids, each equal
// to the generated key.
func TestParseSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]*ecdsa.PrivateKey, 16)
	for i := range pool {
		pool[i] = genKey(t)
	}
	for iter := range 300 {
		n := rng.IntN(8)
		var elems []any
		type gen struct {
			kid string
			pub *ecdsa.PublicKey
			ok  bool
		}
		var gens []gen
		kidUses := map[string]int{}
		for range n {
			k := pool[rng.IntN(len(pool))]
			kid := fmt.Sprintf("k%d", rng.IntN(10))
			v := variants[rng.IntN(len(variants))]
			m := ecJWK(t, kid, &k.PublicKey)
			v.edit(m)
			if _, hasKid := m["kid"]; hasKid {
				kidUses[kid]++
			}
			gens = append(gens, gen{kid, &k.PublicKey, v.ok})
			elems = append(elems, m)
		}
		want := map[string]*ecdsa.PublicKey{}
		for _, g := range gens {
			if g.ok && kidUses[g.kid] == 1 {
				want[g.kid] = g.pub
			}
		}
		data := setJSON(t, elems...)
		keys, skipped, err := ParseSet(data)
		if len(want) == 0 {
			if err == nil {
				t.Fatalf("iter %d: got %d keys, want error for %s", iter, len(keys), data)
			}
			continue
		}
		if err != nil {
			t.Fatalf("iter %d: ParseSet: %v for %s", iter, err, data)
		}
		if len(keys) != len(want) || skipped != n-len(want) {
			t.Fatalf("iter %d: got %d keys, %d skipped; want %d, %d for %s", iter, len(keys), skipped, len(want), n-len(want), data)
		}
		for kid, pub := range want {
			if !sameKey(keys[kid], pub) {
				t.Fatalf("iter %d: kid %s: wrong key", iter, kid)
			}
		}
	}
}

func FuzzParseSet(f *testing.F) {
	k := genKey(f)
	f.Add(setJSON(f, ecJWK(f, "a", &k.PublicKey)))
	f.Add(setJSON(f, ecJWK(f, "a", &k.PublicKey), ecJWK(f, "a", &k.PublicKey)))
	f.Add([]byte(`{"keys":[{"kid":"BEDD-0","crv":"P-256","kty":"EC","x":"2bZYYFE2k7GqZfsLtNoG_lYKzG_BVO0Hyr1AC1fNhl8","y":"v-sDxghp7fV6SvKjMioVY_OBN3FsFbd9DmpnZ3uT1KU","alg":"ES256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"z","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"},1,null,"s"]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`<html>403</html>`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := ParseSet(data)
		if skipped < 0 {
			t.Fatalf("negative skipped %d", skipped)
		}
		if err != nil {
			if keys != nil {
				t.Fatalf("keys %v returned with error %v", keys, err)
			}
			if !errors.Is(err, ErrInvalidSet) {
				t.Fatalf("error %v does not wrap ErrInvalidSet", err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for kid, k := range keys {
			if kid == "" {
				t.Fatal("empty kid accepted")
			}
			if k == nil || k.Curve != elliptic.P256() {
				t.Fatalf("kid %q: key %v is not P-256", kid, k)
			}
			if !k.Curve.IsOnCurve(k.X, k.Y) { //nolint:staticcheck // deliberate independent check
				t.Fatalf("kid %q: point not on P-256", kid)
			}
		}
	})
}
