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
