package kyapay_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newSeller returns a fake issuer and a verifier that trusts it, fetching
// its keys through a real JWKS cache.
func newSeller(t testing.TB, mod func(*kyapay.VerifierConfig)) (*kyapaytest.Issuer, *kyapay.Verifier, *clock) {
	t.Helper()
	clk := newClock()
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(clk.Now))
	t.Cleanup(iss.Close)
	cfg := kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   kyapaytest.DefaultAudience,
		ServiceID:  kyapaytest.DefaultServiceID,
		Env:        kyapay.EnvProduction,
		Clock:      clk.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := kyapay.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return iss, v, clk
}

func TestBothGenerationsFromFakeIssuer(t *testing.T) {
	t.Parallel()
	iss, v, _ := newSeller(t, nil)
	for _, typ := range []kyapay.TokenType{kyapay.TypeKYA, kyapay.TypePay, kyapay.TypeKYAPay} {
		for _, legacy := range []bool{false, true} {
			var opts []kyapaytest.TokenOption
			wantGen := kyapay.GenerationCurrent
			if legacy {
				opts = append(opts, kyapaytest.Legacy())
				wantGen = kyapay.GenerationLegacy
			}
			tok := iss.Mint(typ, append(opts, kyapaytest.Amount("2.5"), kyapaytest.Email("who@example.com"))...)
			c, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("%v legacy=%v: %v", typ, legacy, err)
			}
			if c.Type != typ || c.Generation != wantGen {
				t.Errorf("%v legacy=%v: got type %v generation %v", typ, legacy, c.Type, c.Generation)
			}
			if typ.HasPayment() && (c.Amount != kyapay.MustParseAmount("2.5") || c.Value != "2500000") {
				t.Errorf("%v legacy=%v: amount %v value %q", typ, legacy, c.Amount, c.Value)
			}
			if typ.HasIdentity() && (c.Human == nil || c.Human.Email != "who@example.com") {
				t.Errorf("%v legacy=%v: identity %+v", typ, legacy, c.Human)
			}
		}
	}
}

// TestNewKeyStormFetchesOnce: after a key rotation, 1,000 concurrent
// verifications of tokens signed with the new kid cause exactly one JWKS
// fetch, and all succeed.
func TestNewKeyStormFetchesOnce(t *testing.T) {
	t.Parallel()
	iss, v, clk := newSeller(t, func(c *kyapay.VerifierConfig) { c.CacheSize = -1 })
	if _, err := v.Verify(context.Background(), iss.Mint(kyapay.TypeKYA)); err != nil {
		t.Fatal(err)
	}
	before := iss.JWKSFetches()
	iss.RotateKey()
	clk.Advance(time.Minute) // past the unknown-kid window of the start-up fetch
	const n = 1000
	toks := make([]string, n)
	for i := range toks {
		toks[i] = iss.Mint(kyapay.TypePay)
	}
	var failed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(tok string) {
			defer wg.Done()
			<-start
			if _, err := v.Verify(context.Background(), tok); err != nil {
				failed.Add(1)
			}
		}(toks[i])
	}
	close(start)
	wg.Wait()
	if got := iss.JWKSFetches() - before; got != 1 {
		t.Errorf("JWKS fetches for 1,000 concurrent new-kid verifications = %d; want 1", got)
	}
	if failed.Load() != 0 {
		t.Errorf("%d verifications failed", failed.Load())
	}

	// A storm of tokens with a kid the issuer never published: at most one
	// more fetch per window, and every one refused as key_unknown.
	before = iss.JWKSFetches()
	clk.Advance(time.Minute)
	stranger := kyapaytest.NewKey()
	bogus := iss.Mint(kyapay.TypePay, kyapaytest.SignWith(stranger, "never-published"))
	var wrongCode atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(context.Background(), bogus); !errors.Is(err, kyapay.ErrKeyUnknown) {
				wrongCode.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := iss.JWKSFetches() - before; got > 1 {
		t.Errorf("JWKS fetches for an unknown-kid storm = %d; want at most 1", got)
	}
	if wrongCode.Load() != 0 {
		t.Errorf("%d unknown-kid verifications not refused as key_unknown", wrongCode.Load())
	}
}

func TestJWKSDownIsNotTheBuyersFault(t *testing.T) {
	t.Parallel()
	iss, v, _ := newSeller(t, nil)
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointJWKS, Status: 500})
	_, err := v.Verify(context.Background(), iss.Mint(kyapay.TypeKYA))
	if !errors.Is(err, kyapay.ErrKeysUnavailable) {
		t.Fatalf("err = %v; want keys_unavailable", err)
	}
}

// TestInteropWithJWX checks that what the fake issuer mints and this
// verifier accepts is an ordinary ES256 JWS to an independent
// implementation.
func TestInteropWithJWX(t *testing.T) {
	t.Parallel()
	iss, v, _ := newSeller(t, nil)
	set, err := jwk.Parse(iss.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{iss.Mint(kyapay.TypeKYAPay), iss.Mint(kyapay.TypePay, kyapaytest.Legacy())} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("kyapay: %v", err)
		}
		if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
			t.Errorf("jwx refused a token kyapay accepts: %v", err)
		}
	}
}

// TestRefusalClassesWithFakeIssuer covers each refusal code with tokens
// minted by the fake issuer, in both claim generations.
func TestRefusalClassesWithFakeIssuer(t *testing.T) {
	t.Parallel()
	iss, v, clk := newSeller(t, nil)
	stranger := kyapaytest.NewKey()
	tests := []struct {
		name string
		typ  kyapay.TokenType
		opts []kyapaytest.TokenOption
		want *kyapay.Error
	}{
		{"alg none", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("alg", "none")}, kyapay.ErrAlgorithmNotAllowed},
		{"alg HS256", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("alg", "HS256")}, kyapay.ErrAlgorithmNotAllowed},
		{"jku", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("jku", "https://evil.example/jwks")}, kyapay.ErrHeaderNotAllowed},
		{"x5u", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("x5u", "https://evil.example/x5u")}, kyapay.ErrHeaderNotAllowed},
		{"embedded jwk", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("jwk", map[string]any{"kty": "EC"})}, kyapay.ErrHeaderNotAllowed},
		{"x5c", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("x5c", []string{"MIIB"})}, kyapay.ErrHeaderNotAllowed},
		{"crit", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Header("crit", []string{"exp"})}, kyapay.ErrHeaderNotAllowed},
		{"cnf", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Claim("cnf", map[string]any{"jkt": "x"})}, kyapay.ErrConfirmationNotSupported},
		{"typ JWT", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Typ("JWT")}, kyapay.ErrTypeNotAccepted},
		{"kid missing", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.WithoutHeader("kid")}, kyapay.ErrTokenMalformed},
		{"unknown signer", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.SignWith(stranger, kyapaytest.DefaultKeyID)}, kyapay.ErrSignatureInvalid},
		{"expired", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.ExpiresAt(clk.Now().Add(-time.Minute))}, kyapay.ErrTokenExpired},
		{"not yet valid", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.NotBefore(clk.Now().Add(time.Hour))}, kyapay.ErrTokenNotYetValid},
		{"issued in the future", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.IssuedAt(clk.Now().Add(time.Hour)), kyapaytest.ExpiresAt(clk.Now().Add(2 * time.Hour))}, kyapay.ErrTokenNotYetValid},
		{"exp missing", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.WithoutClaim("exp")}, kyapay.ErrClaimMissing},
		{"jti missing", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.WithoutClaim("jti")}, kyapay.ErrClaimMissing},
		{"untrusted issuer", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.Claim("iss", "https://app.skyfire.xyz")}, kyapay.ErrIssuerUntrusted},
		{"audience", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.Audience("another-seller")}, kyapay.ErrAudienceMismatch},
		{"service", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.ServiceID("another-service")}, kyapay.ErrServiceMismatch},
		{"env", kyapay.TypeKYA, []kyapaytest.TokenOption{kyapaytest.Env(kyapay.EnvSandbox)}, kyapay.ErrEnvMismatch},
		{"amount with exponent", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Amount("1e3")}, kyapay.ErrClaimInvalid},
		{"currency", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.Currency("EUR")}, kyapay.ErrClaimInvalid},
		{"pay without amount", kyapay.TypePay, []kyapaytest.TokenOption{kyapaytest.WithoutClaim("amt")}, kyapay.ErrClaimMissing},
	}
	for _, tt := range tests {
		for _, legacy := range []bool{false, true} {
			opts := tt.opts
			if legacy {
				opts = append([]kyapaytest.TokenOption{kyapaytest.Legacy()}, opts...)
				if tt.name == "pay without amount" {
					opts = append(opts, kyapaytest.WithoutClaim("amount"))
				}
			}
			tok := iss.Mint(tt.typ, opts...)
			_, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s (legacy=%v): err = %v; want %s", tt.name, legacy, err, tt.want.Code)
			}
		}
	}
}
