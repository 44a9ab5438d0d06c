package kyapaycaddy

import (
	"context"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// insecure_any_audience reaches the verifier as its explicit opt-out: the
// verifier builds without a seller id and accepts a token issued for any
// seller, while without the opt-out a missing seller id is refused.
func TestAnyAudienceReachesTheVerifier(t *testing.T) {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("some-other-seller"))
	defer iss.Close()
	s := verifierSettings{Issuers: []string{iss.Issuer()}, AnyAudience: true}
	v, err := kyapay.NewVerifier(testConfig(s, iss))
	if err != nil {
		t.Fatalf("any audience: %v", err)
	}
	defer v.Close()
	if _, err := v.Verify(context.Background(), iss.Mint(kyapay.TypeKYA)); err != nil {
		t.Errorf("token for another seller refused with any audience: %v", err)
	}
	s.AnyAudience = false
	if _, err := kyapay.NewVerifier(testConfig(s, iss)); err == nil {
		t.Error("a verifier without seller id or opt-out was built")
	}
}

// testConfig is s's verifier configuration with the fake issuer's keys.
func testConfig(s verifierSettings, iss *kyapaytest.Issuer) kyapay.VerifierConfig {
	cfg := s.verifierConfig()
	cfg.JWKSURLs = map[string]string{iss.Issuer(): iss.JWKSURL()}
	cfg.HTTPClient = iss.Client()
	return cfg
}
