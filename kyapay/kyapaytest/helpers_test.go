package kyapaytest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// servedKey is one key of a JWKS as a relying party sees it.
type servedKey struct {
	Kty, Crv, X, Y, Kid, Alg, Use string
}

// fetchJWKS GETs the issuer's JWKS and returns its keys by kid and the
// response's Cache-Control.
func fetchJWKS(t *testing.T, iss *kyapaytest.Issuer) (map[string]*ecdsa.PublicKey, []servedKey, string) {
	t.Helper()
	resp, err := iss.Client().Get(iss.JWKSURL())
	if err != nil {
		t.Fatalf("GET JWKS: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET JWKS: status %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	keys := make(map[string]*ecdsa.PublicKey)
	var served []servedKey
	for _, k := range set.Keys {
		served = append(served, servedKey{k.Kty, k.Crv, k.X, k.Y, k.Kid, k.Alg, k.Use})
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			t.Fatalf("JWKS key %q: bad coordinates", k.Kid)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatalf("JWKS key %q: %v", k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	return keys, served, resp.Header.Get("Cache-Control")
}

// verifyIndependently checks a token's ES256 signature against the served
// JWKS with crypto/ecdsa only and returns its decoded header and claims.
func verifyIndependently(t *testing.T, iss *kyapaytest.Issuer, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts; want 3", len(parts))
	}
	header = decodePart(t, parts[0])
	claims = decodePart(t, parts[1])
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: len %d, err %v", len(sig), err)
	}
	keys, _, _ := fetchJWKS(t, iss)
	kid, _ := header["kid"].(string)
	pub, ok := keys[kid]
	if !ok {
		t.Fatalf("kid %q not in served JWKS", kid)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatalf("signature does not verify with JWKS key %q", kid)
	}
	return header, claims
}

func decodePart(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("segment is not base64url: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("segment is not JSON: %v", err)
	}
	return m
}

// apiResult is a decoded API response.
type apiResult struct {
	Status int
	Body   map[string]any
	Raw    string
}

// call sends a request to the fake API with the issuer's API key.
func call(t *testing.T, iss *kyapaytest.Issuer, method, path string, body any) apiResult {
	t.Helper()
	return callWith(t, context.Background(), iss, iss.APIKey(), method, path, body)
}

func callWith(t *testing.T, ctx context.Context, iss *kyapaytest.Issuer, apiKey, method, path string, body any) apiResult {
	t.Helper()
	res, err := tryCall(ctx, iss, apiKey, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

func tryCall(ctx context.Context, iss *kyapaytest.Issuer, apiKey, method, path string, body any) (apiResult, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return apiResult{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, iss.APIBaseURL()+path, rd)
	if err != nil {
		return apiResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("skyfire-api-key", apiKey)
	}
	resp, err := iss.Client().Do(req)
	if err != nil {
		return apiResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResult{}, err
	}
	res := apiResult{Status: resp.StatusCode, Raw: string(raw)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&res.Body) // non-JSON bodies leave Body nil
	return res, nil
}

// charge posts a charge; amount "" omits chargeAmount.
func charge(t *testing.T, iss *kyapaytest.Issuer, tok, amount string) apiResult {
	t.Helper()
	body := map[string]any{"token": tok}
	if amount != "" {
		body["chargeAmount"] = amount
	}
	return call(t, iss, http.MethodPost, kyapaytest.ChargePath, body)
}

// wantStatus fails unless res has the given status and envelope code
// (code "" skips the code check).
func wantStatus(t *testing.T, res apiResult, status int, code string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %d; want %d (body %s)", res.Status, status, res.Raw)
	}
	if code != "" {
		if got, _ := res.Body["code"].(string); got != code {
			t.Fatalf("code = %q; want %q (body %s)", got, code, res.Raw)
		}
		if msg, _ := res.Body["message"].(string); msg == "" {
			t.Fatalf("error envelope without message: %s", res.Raw)
		}
	}
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// verifiesWith reports whether tok's ES256 signature verifies with pub.
func verifiesWith(tok string, pub *ecdsa.PublicKey) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || pub == nil {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return false
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}
