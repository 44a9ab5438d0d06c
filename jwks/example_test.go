package jwks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/kyapay/kyapay-go/jwks"
)

// This example serves a one-key JWKS from a local test server in place of
// https://app.skyfire.xyz/.well-known/jwks.json, builds a Cache that trusts
// that issuer, and looks keys up by kid.
func Example() {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	point, _ := priv.PublicKey.Bytes() // 0x04 || x || y
	set, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "BEDD-0",
		"x": base64.RawURLEncoding.EncodeToString(point[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(point[33:]),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(set)
	}))
	defer srv.Close()

	// ctx bounds the cache's background work; use the server's lifetime.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys, err := jwks.New(ctx, jwks.Config{
		Issuers:  map[string]string{"https://app.skyfire.xyz": srv.URL},
		FailFast: true, // refuse to start without keys
		OnRefresh: func(ev jwks.RefreshEvent) {
			if ev.Err != nil {
				log.Printf("JWKS refresh for %s failed: %v", ev.Issuer, ev.Err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()

	// In a verifier: iss and kid come from an ES256 token whose issuer is
	// already known to be trusted.
	pub, err := keys.Key(ctx, "https://app.skyfire.xyz", "BEDD-0")
	fmt.Println(pub.Equal(&priv.PublicKey), err)

	_, err = keys.Key(ctx, "https://app.skyfire.xyz", "rotated-away")
	fmt.Println(errors.Is(err, jwks.ErrKeyNotFound))

	_, err = keys.Key(ctx, "https://evil.example", "BEDD-0")
	fmt.Println(errors.Is(err, jwks.ErrUnknownIssuer))
	// Output:
	// true <nil>
	// true
	// true
}

// ParseSet is the pure parser the Cache uses; it skips keys it cannot use
// rather than rejecting the whole set.
func ExampleParseSet() {
	keys, skipped, err := jwks.ParseSet([]byte(`{"keys":[
		{"kty":"EC","crv":"P-256","alg":"ES256","kid":"BEDD-0",
		 "x":"2bZYYFE2k7GqZfsLtNoG_lYKzG_BVO0Hyr1AC1fNhl8","y":"v-sDxghp7fV6SvKjMioVY_OBN3FsFbd9DmpnZ3uT1KU"},
		{"kty":"RSA","kid":"rsa-1","n":"AQAB","e":"AQAB"}
	]}`))
	fmt.Println(len(keys), skipped, err, keys["BEDD-0"].Curve.Params().Name)
	// Output: 1 1 <nil> P-256
}
