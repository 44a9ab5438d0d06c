// Differential test of ParseSet against lestrrat-go/jwx/v3 (test-only
// dependency; package jwks itself uses only the standard library and
// golang.org/x/sync).

package jwks

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// jwxKey parses one JWK element with jwx and exports its public key.
func jwxKey(elem []byte) (*ecdsa.PublicKey, error) {
	k, err := jwk.ParseKey(elem)
	if err != nil {
		return nil, err
	}
	var pub ecdsa.PublicKey
	if err := jwk.Export(k, &pub); err != nil {
		return nil, err
	}
	return &pub, nil
}

// TestParseSetMatchesJWX: for random generated sets, every key ParseSet
// accepts equals what jwx/v3 parses for that kid's element, and jwx rejects
// every off-curve or malformed element that ParseSet rejects for that reason.
func TestParseSetMatchesJWX(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pool := make([]*ecdsa.PrivateKey, 16)
	for i := range pool {
		pool[i] = genKey(t)
	}
	compared := 0
	for iter := range 500 {
		n := 1 + rng.IntN(8)
		elems := make([]map[string]any, n)
		kinds := make([]string, n)
		for i := range n {
			v := variants[rng.IntN(len(variants))]
			m := ecJWK(t, fmt.Sprintf("k%d", rng.IntN(12)), &pool[rng.IntN(len(pool))].PublicKey)
			v.edit(m)
			elems[i], kinds[i] = m, v.name
		}
		anys := make([]any, n)
		for i := range elems {
			anys[i] = elems[i]
		}
		keys, _, _ := ParseSet(setJSON(t, anys...))
		for i, m := range elems {
			raw := mustJSON(t, m)
			kid, _ := m["kid"].(string)
			got, accepted := keys[kid]
			want, jerr := jwxKey(raw)
			switch {
			case accepted: // kids of accepted keys are unique, so element i is its source
				if jerr != nil {
					t.Fatalf("iter %d: ParseSet accepted %s but jwx rejects it: %v", iter, raw, jerr)
				}
				if !got.Equal(want) {
					t.Fatalf("iter %d: kid %s: ParseSet and jwx disagree on the key", iter, kid)
				}
				compared++
			case kinds[i] == "off curve" || kinds[i] == "bad base64" || kinds[i] == "no x":
				if jerr == nil {
					t.Errorf("iter %d: jwx accepted a %s element %s", iter, kinds[i], raw)
				}
			}
		}
	}
	if compared < 500 {
		t.Fatalf("only %d keys compared", compared)
	}
	t.Logf("compared %d accepted keys with jwx/v3", compared)
}

// TestJWXObservedSkyfireKey checks the published Skyfire key parses the same
// way in both.
func TestJWXObservedSkyfireKey(t *testing.T) {
	elem := []byte(`{"kid":"BEDD-0","crv":"P-256","kty":"EC","x":"2bZYYFE2k7GqZfsLtNoG_lYKzG_BVO0Hyr1AC1fNhl8","y":"v-sDxghp7fV6SvKjMioVY_OBN3FsFbd9DmpnZ3uT1KU","alg":"ES256"}`)
	keys, _, err := ParseSet([]byte(`{"keys":[` + string(elem) + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	want, err := jwxKey(elem)
	if err != nil {
		t.Fatal(err)
	}
	if !keys["BEDD-0"].Equal(want) {
		t.Fatal("keys differ")
	}
}

// FuzzJWXAgrees checks, for arbitrary input, that every key ParseSet
// accepts is accepted by jwx/v3 with the same value.
func FuzzJWXAgrees(f *testing.F) {
	k := genKey(f)
	f.Add(setJSON(f, ecJWK(f, "a", &k.PublicKey)))
	f.Add([]byte(`{"keys":[{"kid":"BEDD-0","crv":"P-256","kty":"EC","x":"2bZYYFE2k7GqZfsLtNoG_lYKzG_BVO0Hyr1AC1fNhl8","y":"v-sDxghp7fV6SvKjMioVY_OBN3FsFbd9DmpnZ3uT1KU","alg":"ES256"}]}`))
	f.Add([]byte(`{"keys":[{"kid":"p","crv":"P-256","kty":"EC","x":"2bZYYFE2k7GqZfsLtNoG_lYKzG_BVO0Hyr1AC1fNhl8=","y":"v-sDxghp7fV6SvKjMioVY_OBN3FsFbd9DmpnZ3uT1KU=","use":"sig","key_ops":["verify"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := ParseSet(data)
		if err != nil {
			return
		}
		// Find the elements exactly as ParseSet does (exact member names).
		var top map[string]json.RawMessage
		var elems []json.RawMessage
		if json.Unmarshal(data, &top) != nil || json.Unmarshal(top["keys"], &elems) != nil {
			t.Fatal("ParseSet accepted a document that is not a JWK Set")
		}
		for _, elem := range elems {
			var m map[string]json.RawMessage
			if json.Unmarshal(elem, &m) != nil {
				continue
			}
			kid, _, isString := member(m, "kid")
			got, ok := keys[kid]
			if !isString || !ok {
				continue
			}
			want, err := jwxKey(elem)
			if err != nil {
				t.Fatalf("ParseSet accepted %s; jwx rejects it: %v", elem, err)
			}
			if !got.Equal(want) {
				t.Fatalf("ParseSet and jwx disagree on %s", elem)
			}
		}
	})
}
