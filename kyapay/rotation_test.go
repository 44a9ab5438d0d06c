package kyapay_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/jwks"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// TestRotationRightAfterStartup is the rotation scenario with the
// verifier's own JWKS cache: the issuer starts signing with a new kid just
// after the seller's startup fetch. Tokens with the new kid are refused as
// key_unknown only until jwks.DefaultNewKIDInterval after that fetch (not
// 30 s); then 1,000 concurrent ones cause one fetch and all pass.
func TestRotationRightAfterStartup(t *testing.T) {
	t.Parallel()
	iss, v, clk := newSeller(t, func(c *kyapay.VerifierConfig) { c.CacheSize = -1 })
	// The startup fetch, which Verify waits for.
	if _, err := v.Verify(context.Background(), iss.Mint(kyapay.TypePay)); err != nil {
		t.Fatal(err)
	}
	startup := clk.Now()
	fetches := iss.JWKSFetches()
	iss.RotateKey()
	const n = 1000
	toks := make([]string, n)
	for i := range toks {
		toks[i] = iss.Mint(kyapay.TypePay)
	}

	var firstAccepted time.Duration
	for step := time.Duration(0); step <= 30*time.Second; step += time.Second {
		if _, err := v.Verify(context.Background(), toks[0]); err == nil {
			firstAccepted = clk.Now().Sub(startup)
			break
		} else if !errors.Is(err, kyapay.ErrKeyUnknown) {
			t.Fatalf("%v after the startup fetch: err = %v; want key_unknown", clk.Now().Sub(startup), err)
		}
		clk.Advance(time.Second)
	}
	if firstAccepted == 0 || firstAccepted > jwks.DefaultNewKIDInterval {
		t.Fatalf("first acceptance of the new kid %v after the startup fetch; want within %v", firstAccepted, jwks.DefaultNewKIDInterval)
	}
	if got := iss.JWKSFetches() - fetches; got != 1 {
		t.Fatalf("%d JWKS fetches before the new kid was accepted; want 1", got)
	}

	var failed atomic.Int32
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d new-kid tokens refused after the refresh", failed.Load(), n)
	}
	if got := iss.JWKSFetches() - fetches; got != 1 {
		t.Errorf("%d JWKS fetches for the rotation; want 1", got)
	}
}

// TestCachedTokenRefusedAfterKeyRemoved: a token served from the verified
// cache is refused as soon as a refresh shows its key was removed from the
// JWKS, without another fetch; a refresh that keeps the key keeps the
// token cached.
func TestCachedTokenRefusedAfterKeyRemoved(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(clk.Now))
	t.Cleanup(iss.Close)
	keys, err := jwks.New(context.Background(), jwks.Config{
		Issuers:    map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Clock:      clk.Now,
		FailFast:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	cfg := iss.VerifierConfig()
	cfg.Keys = keys
	v, err := kyapay.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Mint(kyapay.TypePay, kyapaytest.ExpiresIn(30*24*time.Hour))
	first, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}

	// A refresh that still publishes the key: still a cache hit.
	if err := keys.Refresh(context.Background(), iss.Issuer()); err != nil {
		t.Fatal(err)
	}
	if again, err := v.Verify(context.Background(), tok); err != nil || again != first {
		t.Fatalf("after a refresh keeping the key: %v, same claims %v; want the cached claims", err, again == first)
	}

	iss.RemoveKey(kyapaytest.DefaultKeyID)
	if err := keys.Refresh(context.Background(), iss.Issuer()); err != nil {
		t.Fatal(err)
	}
	fetches := iss.JWKSFetches()
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, kyapay.ErrKeyUnknown) {
		t.Fatalf("cached token after its key was removed: err = %v; want key_unknown", err)
	}
	if got := iss.JWKSFetches() - fetches; got != 0 {
		t.Errorf("refusing the cached token caused %d JWKS fetches; want 0", got)
	}
	// Tokens of the new key are unaffected.
	if _, err := v.Verify(context.Background(), iss.Mint(kyapay.TypePay)); err != nil {
		t.Errorf("token of the new signing key: %v", err)
	}
}
