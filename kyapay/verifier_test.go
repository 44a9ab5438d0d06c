package kyapay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testNow is the fixed time every verifier test runs at.
var testNow = time.Unix(1_800_000_000, 0)

const (
	testIss = "https://issuer.test"
	testAud = "7434230d-0861-46f2-9c2c-a6ee33d07f17"
	testSSI = "bc3ff89f-069b-4383-82a9-8cfe53c55fc3"
)

var testKey = mustKey()

func mustKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// mint signs header and claims (as JSON-encoded maps) with key.
func mint(key *ecdsa.PrivateKey, hdr, claims map[string]any) string {
	hj, _ := json.Marshal(hdr)
	cj, _ := json.Marshal(claims)
	return mintRaw(key, hj, cj)
}

func mintRaw(key *ecdsa.PrivateKey, hj, cj []byte) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hj) + "." + enc.EncodeToString(cj)
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		panic(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig[:])
}

func currentHeader(typ string) map[string]any {
	return map[string]any{"alg": "ES256", "kid": "k1", "typ": typ}
}

func currentPay() map[string]any {
	return map[string]any{
		"iss": testIss, "sub": "bb713104-c14e-460f-9b7c-f8140fa9bea4", "aud": testAud,
		"iat": testNow.Unix() - 60, "exp": testNow.Unix() + 3600,
		"jti": "b9821893-7699-4d24-af06-803a6a16476b", "env": "production", "ssi": testSSI,
		"btg": "4f6cbd39", "spr": "0.01", "sps": "pay_per_use", "amt": "15", "cur": "USD",
		"val": "15000000", "mnr": 1600, "stp": "card",
		"sti": map[string]any{"type": "visa_vic", "paymentToken": "1234", "tokenSecurityCode": "123", "verified": true},
	}
}

func currentKYA() map[string]any {
	return map[string]any{
		"iss": testIss, "sub": "bb713104", "aud": testAud,
		"iat": testNow.Unix() - 60, "exp": testNow.Unix() + 3600,
		"jti": "0d8f3c52-7a1e-4b6d-9c2f-5e8a1b3d7f40", "env": "production", "ssi": testSSI,
		"hid": map[string]any{"email": "buyer@example.com", "given_name": "Ada", "verified": true},
		"apd": map[string]any{"id": "d3306fc0", "name": "Acme Shopping Agents", "verified": true},
		"aid": map[string]any{"name": "Acme Agent", "creation_ip": "54.86.50.139",
			"source_ips": []string{"54.86.50.139-54.86.50.141", "1.1.1.0/24", "acme.com"}},
	}
}

func legacyPay() map[string]any {
	return map[string]any{
		"ver": "1", "iss": testIss, "sub": "s", "aud": testAud,
		"iat": testNow.Unix() - 60, "exp": testNow.Unix() + 3600, "jti": "6a2e9d14-3b7c-4f85-a0d6-8c1e5f2b9a37",
		"env": "production", "ssi": testSSI, "spr": "0.010000", "sps": "PAY_PER_USE",
		"amount": "15.000000", "cur": "USD", "value": "15000000", "mnr": "1500",
		"bid":    map[string]any{"skyfireEmail": "old@example.com", "nameFirst": "Grace", "selectedCountryCode": "US"},
		"scopes": []string{"read", "write"},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// countingKeys is a KeySource that counts lookups.
type countingKeys struct {
	StaticKeys
	n atomic.Int64
}

func (c *countingKeys) Key(ctx context.Context, iss, kid string) (*ecdsa.PublicKey, error) {
	c.n.Add(1)
	return c.StaticKeys.Key(ctx, iss, kid)
}

func newTestVerifier(t testing.TB, mod func(*VerifierConfig)) *Verifier {
	t.Helper()
	cfg := VerifierConfig{
		Issuers:  []string{testIss},
		Keys:     StaticKeys{"k1": &testKey.PublicKey},
		Audience: testAud, ServiceID: testSSI, Env: EnvProduction,
		Clock: func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, nil)
	tests := []struct {
		name  string
		token string
		check func(t *testing.T, c *Claims)
	}{
		{"current pay", mint(testKey, currentHeader("pay+jwt"), currentPay()), func(t *testing.T, c *Claims) {
			if c.Type != TypePay || c.Generation != GenerationCurrent {
				t.Errorf("type/gen = %v/%v", c.Type, c.Generation)
			}
			if c.Amount != MustParseAmount("15") || !c.HasAmount || c.Value != "15000000" || c.Currency != "USD" {
				t.Errorf("amount = %v %v %q %q", c.Amount, c.HasAmount, c.Value, c.Currency)
			}
			if c.ServicePrice != MustParseAmount("0.01") || c.PricingScheme != "pay_per_use" || c.MaxRequests != 1600 {
				t.Errorf("pricing = %v %q %d", c.ServicePrice, c.PricingScheme, c.MaxRequests)
			}
			if c.Settlement == nil || c.Settlement.Type != "visa_vic" || !c.Settlement.Verified {
				t.Errorf("sti = %+v", c.Settlement)
			}
			if c.ID != "b9821893-7699-4d24-af06-803a6a16476b" || c.Audience != testAud || c.ServiceID != testSSI {
				t.Errorf("ids = %q %q %q", c.ID, c.Audience, c.ServiceID)
			}
			if c.Expiry.Unix() != testNow.Unix()+3600 || c.KeyID != "k1" {
				t.Errorf("exp/kid = %v %q", c.Expiry, c.KeyID)
			}
		}},
		{"current kya", mint(testKey, currentHeader("kya+jwt"), currentKYA()), func(t *testing.T, c *Claims) {
			if c.Type != TypeKYA || c.Human == nil || c.Human.Email != "buyer@example.com" || c.Human.GivenName != "Ada" || !c.Human.Verified {
				t.Errorf("hid = %+v", c.Human)
			}
			if c.Platform == nil || c.Platform.Name != "Acme Shopping Agents" {
				t.Errorf("apd = %+v", c.Platform)
			}
			if c.Agent == nil || len(c.Agent.SourceIPs) != 3 || c.Agent.CreationIP != "54.86.50.139" {
				t.Errorf("aid = %+v", c.Agent)
			}
			if got, ok := c.Human.Field("email"); !ok || got != "buyer@example.com" {
				t.Errorf("Field(email) = %q, %v", got, ok)
			}
			if _, ok := c.Human.Field("family_name"); ok {
				t.Error("Field(family_name) present")
			}
		}},
		{"current kya-pay, media type typ", mint(testKey, currentHeader("application/KYA-PAY+JWT"), with(currentPay(), "hid", map[string]any{"email": "a@b.c"})), func(t *testing.T, c *Claims) {
			if c.Type != TypeKYAPay || c.Human == nil || c.Human.Email != "a@b.c" {
				t.Errorf("got %v %+v", c.Type, c.Human)
			}
		}},
		{"legacy pay", mint(testKey, currentHeader("pay+JWT"), legacyPay()), func(t *testing.T, c *Claims) {
			if c.Generation != GenerationLegacy || c.Version != "1" {
				t.Errorf("gen = %v ver %q", c.Generation, c.Version)
			}
			if c.Amount != MustParseAmount("15") || c.Value != "15000000" || c.MaxRequests != 1500 || c.PricingScheme != "pay_per_use" {
				t.Errorf("amount %v value %q mnr %d sps %q", c.Amount, c.Value, c.MaxRequests, c.PricingScheme)
			}
			if c.Human == nil || c.Human.Email != "old@example.com" || c.Human.GivenName != "Grace" {
				t.Errorf("bid = %+v", c.Human)
			}
			if got, ok := c.Human.Field("selectedCountryCode"); !ok || got != "US" {
				t.Errorf("legacy key = %q %v", got, ok)
			}
			if strings.Join(c.Scopes, ",") != "read,write" {
				t.Errorf("scopes = %v", c.Scopes)
			}
		}},
		{"legacy kya+pay", mint(testKey, currentHeader("kya+pay+JWT"), legacyPay()), func(t *testing.T, c *Claims) {
			if c.Type != TypeKYAPay || c.Generation != GenerationLegacy {
				t.Errorf("got %v %v", c.Type, c.Generation)
			}
		}},
		{"IETF aliases", mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "ssi", nil, "tsi", testSSI, "btg", nil, "itg", "tag", "spr", nil, "tpr", "0.02", "sps", nil, "tps", "PAY_PER_MB")), func(t *testing.T, c *Claims) {
			if c.ServiceID != testSSI || c.BuyerTag != "tag" || c.ServicePrice != MustParseAmount("0.02") || c.PricingScheme != "pay_per_mb" {
				t.Errorf("aliases: %q %q %v %q", c.ServiceID, c.BuyerTag, c.ServicePrice, c.PricingScheme)
			}
		}},
		{"aud array", mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "aud", []string{"other", testAud})), func(t *testing.T, c *Claims) {
			if len(c.Audiences) != 2 || c.Audience != "other" {
				t.Errorf("aud = %v", c.Audiences)
			}
		}},
		{"exp within leeway", mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "exp", testNow.Unix()-29)), nil},
		{"unknown claims kept raw", mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "x-custom", map[string]any{"a": 1})), func(t *testing.T, c *Claims) {
			raw, ok := c.Claim("x-custom")
			if !ok || string(raw) != `{"a":1}` {
				t.Errorf("Claim = %s %v", raw, ok)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := v.Verify(context.Background(), tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	pay := currentPay()
	hdr := currentHeader("pay+jwt")
	good := mint(testKey, hdr, pay)
	parts := strings.Split(good, ".")
	other := mustKey()
	hs := base64.RawURLEncoding
	tests := []struct {
		name  string
		token string
		mod   func(*VerifierConfig)
		want  *Error
	}{
		{"empty", "", nil, ErrTokenMissing},
		{"too large", strings.Repeat("a", DefaultMaxTokenBytes+1), nil, ErrTokenTooLarge},
		{"two parts", parts[0] + "." + parts[1], nil, ErrTokenMalformed},
		{"four parts (JWE-like)", good + ".x", nil, ErrTokenMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", nil, ErrTokenMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], nil, ErrTokenMalformed},
		{"std base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(parts[0]) + "x+/." + parts[1] + "." + parts[2], nil, ErrTokenMalformed},
		{"non-canonical signature bits", parts[0] + "." + parts[1] + "." + flipLastBits(parts[2]), nil, ErrSignatureInvalid},
		{"alg none", mint(testKey, with(hdr, "alg", "none"), pay), nil, ErrAlgorithmNotAllowed},
		{"alg HS256", mint(testKey, with(hdr, "alg", "HS256"), pay), nil, ErrAlgorithmNotAllowed},
		{"alg RS256", mint(testKey, with(hdr, "alg", "RS256"), pay), nil, ErrAlgorithmNotAllowed},
		{"alg es256 lower", mint(testKey, with(hdr, "alg", "es256"), pay), nil, ErrAlgorithmNotAllowed},
		{"alg missing", mint(testKey, with(hdr, "alg", nil), pay), nil, ErrAlgorithmNotAllowed},
		{"jku", mint(testKey, with(hdr, "jku", "https://evil/jwks"), pay), nil, ErrHeaderNotAllowed},
		{"x5u", mint(testKey, with(hdr, "x5u", "https://evil/x5u"), pay), nil, ErrHeaderNotAllowed},
		{"jwk", mint(testKey, with(hdr, "jwk", map[string]any{"kty": "EC"}), pay), nil, ErrHeaderNotAllowed},
		{"x5c", mint(testKey, with(hdr, "x5c", []string{"MII"}), pay), nil, ErrHeaderNotAllowed},
		{"crit", mint(testKey, with(hdr, "crit", []string{"exp"}), pay), nil, ErrHeaderNotAllowed},
		{"duplicate alg", mintRaw(testKey, []byte(`{"alg":"none","alg":"ES256","kid":"k1","typ":"pay+jwt"}`), mustJSON(pay)), nil, ErrTokenMalformed},
		{"typ missing", mint(testKey, with(hdr, "typ", nil), pay), nil, ErrTokenMalformed},
		{"typ JWT", mint(testKey, with(hdr, "typ", "JWT"), pay), nil, ErrTypeNotAccepted},
		{"type not accepted by config", good, func(c *VerifierConfig) { c.AcceptedTypes = TypeKYA }, ErrTypeNotAccepted},
		{"kid missing", mint(testKey, with(hdr, "kid", nil), pay), nil, ErrTokenMalformed},
		{"kid unknown", mint(testKey, with(hdr, "kid", "nope"), pay), nil, ErrKeyUnknown},
		{"wrong key", mint(other, hdr, pay), nil, ErrSignatureInvalid},
		{"tampered payload", parts[0] + "." + hs.EncodeToString(mustJSON(with(pay, "amt", "1000"))) + "." + parts[2], nil, ErrSignatureInvalid},
		{"payload not JSON", mintRaw(testKey, mustJSON(hdr), []byte("not json")), nil, ErrTokenMalformed},
		{"payload array", mintRaw(testKey, mustJSON(hdr), []byte("[1]")), nil, ErrTokenMalformed},
		{"duplicate claim", mintRaw(testKey, mustJSON(hdr), []byte(`{"aud":"x","aud":"`+testAud+`"}`)), nil, ErrTokenMalformed},
		{"alias conflict amt/amount", mint(testKey, hdr, with(pay, "amount", "99")), nil, ErrTokenMalformed},
		{"issuer untrusted", mint(testKey, hdr, with(pay, "iss", "https://evil")), nil, ErrIssuerUntrusted},
		{"issuer trailing slash", mint(testKey, hdr, with(pay, "iss", testIss+"/")), nil, ErrIssuerUntrusted},
		{"issuer missing", mint(testKey, hdr, with(pay, "iss", nil)), nil, ErrClaimMissing},
		{"exp missing", mint(testKey, hdr, with(pay, "exp", nil)), nil, ErrClaimMissing},
		{"exp string", mint(testKey, hdr, with(pay, "exp", "tomorrow")), nil, ErrClaimInvalid},
		{"exp exponent", mintRaw(testKey, mustJSON(hdr), []byte(`{"iss":"`+testIss+`","exp":1e12}`)), nil, ErrClaimInvalid},
		{"expired", mint(testKey, hdr, with(pay, "exp", testNow.Unix()-31)), nil, ErrTokenExpired},
		{"nbf future", mint(testKey, hdr, with(pay, "nbf", testNow.Unix()+31)), nil, ErrTokenNotYetValid},
		{"iat future", mint(testKey, hdr, with(pay, "iat", testNow.Unix()+31)), nil, ErrTokenNotYetValid},
		{"jti missing", mint(testKey, hdr, with(pay, "jti", nil)), nil, ErrClaimMissing},
		{"sub missing", mint(testKey, hdr, with(pay, "sub", nil)), nil, ErrClaimMissing},
		{"cnf", mint(testKey, hdr, with(pay, "cnf", map[string]any{"jwk": map[string]any{}})), nil, ErrConfirmationNotSupported},
		{"audience mismatch", mint(testKey, hdr, with(pay, "aud", "someone-else")), nil, ErrAudienceMismatch},
		{"audience missing", mint(testKey, hdr, with(pay, "aud", nil)), nil, ErrAudienceMismatch},
		{"service mismatch", mint(testKey, hdr, with(pay, "ssi", "other-service")), nil, ErrServiceMismatch},
		{"env mismatch", mint(testKey, hdr, with(pay, "env", "sandbox")), nil, ErrEnvMismatch},
		{"pay without amount", mint(testKey, hdr, with(pay, "amt", nil)), nil, ErrClaimMissing},
		{"amount float-ish", mint(testKey, hdr, with(pay, "amt", "1e3")), nil, ErrClaimInvalid},
		{"amount 7 decimals", mint(testKey, hdr, with(pay, "amt", "0.0000001")), nil, ErrClaimInvalid},
		{"amount negative", mint(testKey, hdr, with(pay, "amt", "-5")), nil, ErrClaimInvalid},
		{"currency EUR", mint(testKey, hdr, with(pay, "cur", "EUR")), nil, ErrClaimInvalid},
		{"val not a number", mint(testKey, hdr, with(pay, "val", "15e6")), nil, ErrClaimInvalid},
		{"val negative", mint(testKey, hdr, with(pay, "val", "-15000000")), nil, ErrClaimInvalid},
		{"val two dots", mint(testKey, hdr, with(pay, "val", "1.5.0")), nil, ErrClaimInvalid},
		{"mnr negative", mint(testKey, hdr, with(pay, "mnr", -1)), nil, ErrClaimInvalid},
		{"mnr fraction", mint(testKey, hdr, with(pay, "mnr", 1.5)), nil, ErrClaimInvalid},
		{"hid not object", mint(testKey, currentHeader("kya+jwt"), with(currentKYA(), "hid", "me")), nil, ErrClaimInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVerifier(t, tt.mod)
			c, err := v.Verify(context.Background(), tt.token)
			if err == nil {
				t.Fatalf("Verify accepted: %+v", c)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v; want code %s", err, tt.want.Code)
			}
			var e *Error
			if !errors.As(err, &e) || e.Message == "" {
				t.Fatalf("error %v is not a *kyapay.Error with a message", err)
			}
			if strings.Contains(e.Message, "nope") || strings.Contains(e.Message, "evil") {
				t.Errorf("message leaks token content: %q", e.Message)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// flipLastBits changes the unused low bits of the last base64url character,
// giving a different string that decodes to the same bytes under a lax
// decoder.
func flipLastBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last^1])
}

func TestVerifyChecksCheapThingsBeforeKeys(t *testing.T) {
	t.Parallel()
	keys := &countingKeys{StaticKeys: StaticKeys{"k1": &testKey.PublicKey}}
	v := newTestVerifier(t, func(c *VerifierConfig) { c.Keys = keys })
	for _, tok := range []string{
		mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "iss", "https://evil")),
		mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "exp", 1)),
		mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "aud", "x")),
	} {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatal("accepted")
		}
	}
	if n := keys.n.Load(); n != 0 {
		t.Errorf("key lookups = %d; want 0 for tokens failing claim checks", n)
	}
}

func TestVerifyCache(t *testing.T) {
	t.Parallel()
	now := testNow
	keys := &countingKeys{StaticKeys: StaticKeys{"k1": &testKey.PublicKey}}
	v := newTestVerifier(t, func(c *VerifierConfig) {
		c.Keys = keys
		c.Clock = func() time.Time { return now }
	})
	tok := mint(testKey, currentHeader("pay+jwt"), currentPay())
	c1, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 || keys.n.Load() != 1 {
		t.Errorf("second verify not served from cache: same=%v lookups=%d", c1 == c2, keys.n.Load())
	}
	// Past exp + leeway, the cached entry must be refused.
	now = testNow.Add(time.Hour + 31*time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("cached expired token: err = %v; want token_expired", err)
	}
	// A token with non-canonical signature bits is a different cache key
	// and must still fail verification on its own.
	now = testNow
	parts := strings.Split(tok, ".")
	if _, err := v.Verify(context.Background(), parts[0]+"."+parts[1]+"."+flipLastBits(parts[2])); err == nil {
		t.Error("malleated token accepted")
	}
}

func TestVerifyAllocsWithinBudget(t *testing.T) {
	v := newTestVerifier(t, func(c *VerifierConfig) { c.CacheSize = -1 })
	tok := mint(testKey, currentHeader("kya-pay+jwt"), with(currentPay(), "hid", map[string]any{"email": "a@b.c"}))
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 30 {
		t.Errorf("cold Verify allocs = %v; want <= 30", allocs)
	}
	cached := newTestVerifier(t, nil)
	if _, err := cached.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := cached.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("cached Verify allocs = %v; want 0", allocs)
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	t.Parallel()
	keys := StaticKeys{}
	for name, cfg := range map[string]VerifierConfig{
		"no issuers":                    {Keys: keys},
		"empty issuer":                  {Issuers: []string{""}, Keys: keys},
		"spaced issuer":                 {Issuers: []string{" https://x"}, Keys: keys},
		"jwks url for untrusted issuer": {Issuers: []string{testIss}, JWKSURLs: map[string]string{"https://other": "https://other/jwks"}},
		"bad env":                       {Issuers: []string{testIss}, Keys: keys, Env: "prod"},
		"negative skew":                 {Issuers: []string{testIss}, Keys: keys, Leeway: -time.Second},
		"tiny max size":                 {Issuers: []string{testIss}, Keys: keys, MaxTokenBytes: 10},
		"bad type bits":                 {Issuers: []string{testIss}, Keys: keys, AcceptedTypes: 0x80},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: NewVerifier accepted", name)
		}
	}
}

func TestSellerDomainRule(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, func(c *VerifierConfig) { c.ServiceID = ""; c.SellerDomain = "shop.example" })
	ok := mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "ssi", nil, "sdm", "SHOP.example", "srl", "https://api.shop.example/x"))
	if _, err := v.Verify(context.Background(), ok); err != nil {
		t.Errorf("sdm match refused: %v", err)
	}
	bad := mint(testKey, currentHeader("pay+jwt"), with(currentPay(), "ssi", nil, "sdm", "shop.example", "srl", "https://evilshop.example/x"))
	if _, err := v.Verify(context.Background(), bad); !errors.Is(err, ErrServiceMismatch) {
		t.Errorf("srl off-domain: err = %v; want service_mismatch", err)
	}
}

func TestDERSignatureEncoding(t *testing.T) {
	t.Parallel()
	// Cross-check against ecdsa.Verify with big.Ints for signatures whose r
	// or s have leading zero bytes or the high bit set.
	for i := 0; i < 200; i++ {
		msg := []byte{byte(i), byte(i >> 8)}
		d := sha256.Sum256(msg)
		r, s, err := ecdsa.Sign(rand.Reader, testKey, d[:])
		if err != nil {
			t.Fatal(err)
		}
		var sig [64]byte
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		if !verifyES256(&testKey.PublicKey, string(msg), &sig) {
			t.Fatalf("valid signature %d refused (r=%x s=%x)", i, r, s)
		}
		if !ecdsa.Verify(&testKey.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("reference refused")
		}
	}
	var zero [64]byte
	if verifyES256(&testKey.PublicKey, "x", &zero) {
		t.Error("zero signature accepted")
	}
}
