package kyapaytest_test

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

func servedKids(t *testing.T, iss *kyapaytest.Issuer) []string {
	t.Helper()
	_, served, _ := fetchJWKS(t, iss)
	var kids []string
	for _, k := range served {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestJWKSDocument(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	if iss.JWKSURL() != iss.URL()+"/.well-known/jwks.json" || iss.Issuer() != iss.URL() || iss.APIBaseURL() != iss.URL() {
		t.Errorf("URLs: %q %q %q %q", iss.URL(), iss.Issuer(), iss.JWKSURL(), iss.APIBaseURL())
	}
	keys, served, cacheControl := fetchJWKS(t, iss)
	if cacheControl != "public, max-age=3600" {
		t.Errorf("Cache-Control = %q", cacheControl)
	}
	want := servedKey{Kty: "EC", Crv: "P-256", Kid: "key-1", Alg: "ES256", Use: "sig"}
	if len(served) != 1 {
		t.Fatalf("served %d keys; want 1", len(served))
	}
	got := served[0]
	got.X, got.Y = "", ""
	if got != want {
		t.Errorf("key = %+v; want %+v", got, want)
	}
	pub, ok := iss.PublicKey("key-1")
	if !ok || !pub.Equal(keys["key-1"]) {
		t.Error("served key differs from PublicKey(key-1)")
	}

	resp, err := iss.Client().Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != string(iss.JWKS()) {
		t.Errorf("served %s; JWKS() = %s", body, iss.JWKS())
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	if n := iss.JWKSFetches(); n != 2 || iss.Requests(kyapaytest.EndpointJWKS) != 2 {
		t.Errorf("JWKSFetches = %d; want 2", n)
	}

	short := kyapaytest.NewIssuer(kyapaytest.WithJWKSMaxAge(5 * time.Minute))
	defer short.Close()
	if _, _, cc := fetchJWKS(t, short); cc != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", cc)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()

	old := iss.Mint(kyapay.TypePay)
	if kid := iss.RotateKey(); kid != "key-2" {
		t.Fatalf("RotateKey = %q; want key-2", kid)
	}
	if got := servedKids(t, iss); !slices.Equal(got, []string{"key-1", "key-2"}) {
		t.Errorf("JWKS kids = %v; want [key-1 key-2]", got)
	}
	if iss.SigningKeyID() != "key-2" {
		t.Errorf("SigningKeyID = %q", iss.SigningKeyID())
	}
	fresh := iss.Mint(kyapay.TypePay)
	if h, _ := verifyIndependently(t, iss, fresh); h["kid"] != "key-2" {
		t.Errorf("fresh kid = %v", h["kid"])
	}
	verifyIndependently(t, iss, old) // still published
	wantStatus(t, charge(t, iss, old, "0.01"), 200, "")

	iss.RemoveKey("key-1")
	if got := servedKids(t, iss); !slices.Equal(got, []string{"key-2"}) {
		t.Errorf("JWKS kids after RemoveKey = %v; want [key-2]", got)
	}
	if got := iss.KeyIDs(); !slices.Equal(got, []string{"key-2"}) {
		t.Errorf("KeyIDs = %v", got)
	}
	wantStatus(t, charge(t, iss, old, "0.01"), 401, kyapaytest.CodeNotAuthorized)
	wantStatus(t, charge(t, iss, fresh, "0.01"), 200, "")
	// A removed key can still sign, for tests of stale-key tokens.
	h, _, _ := kyapaytest.Decode(iss.Mint(kyapay.TypePay, kyapaytest.KeyID("key-1")))
	if h["kid"] != "key-1" {
		t.Errorf("KeyID(key-1) kid = %v", h["kid"])
	}

	if kid := iss.AddKey(); kid != "key-3" || iss.SigningKeyID() != "key-2" {
		t.Errorf("AddKey = %q, signer %q; want key-3, key-2", kid, iss.SigningKeyID())
	}
	if got := servedKids(t, iss); !slices.Equal(got, []string{"key-2", "key-3"}) {
		t.Errorf("JWKS kids = %v", got)
	}
	iss.RetireKey("key-2")
	if iss.SigningKeyID() != "key-3" {
		t.Errorf("signer after RetireKey(key-2) = %q; want key-3", iss.SigningKeyID())
	}
	if got := servedKids(t, iss); !slices.Equal(got, []string{"key-2", "key-3"}) {
		t.Errorf("retired key not published: %v", got)
	}
	iss.RetireKey("key-3") // no candidate left: a new key takes over
	if iss.SigningKeyID() != "key-4" {
		t.Errorf("signer = %q; want key-4", iss.SigningKeyID())
	}
	verifyIndependently(t, iss, iss.Mint(kyapay.TypeKYA))
	if n := iss.JWKSFetches(); n != 7 {
		t.Errorf("JWKSFetches = %d; want 7", n)
	}
}

func TestJWKSConcurrentFetchAndRotate(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	var wg sync.WaitGroup
	for n := 0; n < 50; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := iss.Client().Get(iss.JWKSURL())
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
		if n%10 == 0 {
			wg.Add(1)
			go func() { defer wg.Done(); iss.RotateKey(); iss.Mint(kyapay.TypePay) }()
		}
	}
	wg.Wait()
	if n := iss.JWKSFetches(); n != 50 {
		t.Errorf("JWKSFetches = %d; want 50", n)
	}
	if got := len(iss.KeyIDs()); got != 6 {
		t.Errorf("%d keys; want 6", got)
	}
}
