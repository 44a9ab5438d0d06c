package kyapaytest

import (
	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// VerifierConfig returns the configuration of a verifier that accepts
// this issuer's tokens as minted by default, the way a seller configures
// one for Skyfire:
//
//   - Issuers: [Issuer.Issuer], its keys fetched from [Issuer.JWKSURL]
//     with [Issuer.Client];
//   - Audience, ServiceID and Env: the issuer's [WithAudience],
//     [WithServiceID] and [WithEnv] (by default [DefaultAudience],
//     [DefaultServiceID] and "production");
//   - Clock: the issuer's [WithClock], so that expiry follows the same
//     time as minting.
//
// Every other field has its default. Change fields before passing it to
// kyapay.NewVerifier, for example CacheSize or Profile.
func (i *Issuer) VerifierConfig() kyapay.VerifierConfig {
	return kyapay.VerifierConfig{
		Issuers:    []string{i.iss},
		JWKSURLs:   map[string]string{i.iss: i.JWKSURL()},
		HTTPClient: i.Client(),
		Audience:   i.cfg.audience,
		ServiceID:  i.cfg.serviceID,
		Env:        i.cfg.env,
		Clock:      i.cfg.clock,
	}
}

// ChargeConfig returns the configuration of a charge client that charges
// through this issuer's fake seller API: BaseURL [Issuer.APIBaseURL] (a
// loopback http:// URL), APIKey [Issuer.APIKey] and HTTPClient
// [Issuer.Client]. Every other field has its default.
func (i *Issuer) ChargeConfig() charge.Config {
	return charge.Config{
		BaseURL:    i.APIBaseURL(),
		APIKey:     charge.APIKey(i.cfg.apiKey),
		HTTPClient: i.Client(),
	}
}
