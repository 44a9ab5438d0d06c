// Package kyapay verifies Skyfire KYAPay tokens offline and models what they
// carry.
//
// A KYAPay token is a compact ES256 JWS sent by a buyer agent in the
// skyfire-pay-id header. Its typ says what it is: kya (who the buyer is), pay
// (a prepaid balance the seller may charge) or kya-pay (both). Two claim
// vocabularies are in circulation, the current one (kya+jwt, hid, amt, val)
// and the legacy one (kya+JWT, bid, amount, value); this package reads both
// into one [Claims] value.
//
// # Verifying
//
// A [Verifier] checks the signature against the issuer's keys (see package
// jwks), then issuer, expiry, audience, service and environment, with a
// clock-skew leeway and an injectable clock. Every refusal is an [*Error]
// with a stable [Code]; use [errors.Is] with the Err* sentinels.
//
// The defaults are the safe ones. The audience (the seller agent's
// account ID) is required, so a token issued for another seller is
// refused; only VerifierConfig.InsecureSkipAudience turns that off. A
// Skyfire issuer preset ([ProductionIssuer], [SandboxIssuer]) brings its
// env with it. The claim rules follow Skyfire's reference verifiers (iat
// required, jti a UUID, pay tokens with amt, val and cur "USD"); each is
// relaxed separately in [Profile]. Verified tokens are cached under a
// fixed-size digest, and a cached token is refused as soon as its signing
// key is no longer published.
//
// # Money
//
// [Amount] is an exact USD amount with at most six decimals, parsed from and
// formatted as decimal strings. There is no floating point in this module's
// handling of money.
//
// # Context
//
// [NewContext] and [FromContext] carry verified claims through a request.
package kyapay
