// Package kyapaytest provides a fake Skyfire token issuer and seller API for
// tests, in the spirit of net/http/httptest.
//
// [NewIssuer] starts a loopback HTTP server that plays both Skyfire roles a
// seller talks to:
//
//   - the token issuer: it mints signed KYAPay tokens ([Issuer.Mint]) in the
//     current or the legacy claim vocabulary, and publishes its ES256 keys as
//     a JWKS at [Issuer.JWKSURL], with key rotation ([Issuer.RotateKey],
//     [Issuer.RetireKey], [Issuer.RemoveKey]);
//   - the seller API: POST /api/v1/tokens/charge, POST
//     /api/v1/tokens/introspect and GET /api/v1/tokens/{jti}/charges under
//     [Issuer.APIBaseURL], authenticated by the skyfire-api-key header, with
//     an exact-decimal per-token ledger that tests can inspect
//     ([Issuer.Charges], [Issuer.Balance]).
//
// By default a minted token's iss is the server URL, so a verifier that
// trusts [Issuer.Issuer] finds the keys at the issuer's well-known JWKS
// location. Tokens can be bent in every way a verifier must reject (expired,
// wrong audience, foreign key, odd typ, missing claims) with [TokenOption]
// values such as [ExpiresIn], [Audience], [SignWith], [Typ] and
// [WithoutClaim].
//
// # Seller API
//
// Every API request needs the skyfire-api-key header ([Issuer.APIKey]),
// else 401 NOT_AUTHORIZED. Errors use Skyfire's envelope
// {"code","message","details"}, with details {field:{"message"}} only for
// 422 VALIDATION_ERROR.
//
//   - POST /api/v1/tokens/charge {"token","chargeAmount"}: the token must
//     verify (ES256) against a published key and have been minted by this
//     issuer, else 401; kya tokens get 400 "kya tokens cannot be charged";
//     a token more than 24 hours past exp gets 401. chargeAmount must be a
//     decimal above zero with at most six decimals, else 422; when omitted
//     the service price ([WithServicePrice]) is charged. More than the
//     token amount or the remaining balance gets 402 PAYMENT_ERROR.
//     Success: 200 {"amountCharged","remainingBalance","transactionId"}.
//   - POST /api/v1/tokens/introspect {"token"}: 200 {"isValid",
//     "validationError" (only when invalid), "remainingBalance" (pay and
//     kya-pay tokens)}.
//   - GET /api/v1/tokens/{jti}/charges?size=N&pageCursor=C: 200
//     {"data":[{"tokenId","chargeId","value","chargedAt"}],
//     "nextPageCursor"}, the cursor empty on the last page; 404 NOT_FOUND
//     for an unknown jti.
//
// # Faults
//
// [Issuer.InjectFault] makes an endpoint answer with a given status or raw
// body, delay, hang, drop the connection, or charge and then never answer
// ([Fault.TimeoutAfterCharge]): the case where a seller cannot know whether
// it was paid. Every blocking fault ends when the client gives up or when
// [Issuer.Close] is called, so Close never deadlocks.
//
// # Use outside tests
//
// Nothing here needs a *testing.T: demo programs can start an Issuer, mint
// tokens and call a protected handler. Programmer errors (an unknown key ID,
// an unparsable balance) panic.
//
// An Issuer is safe for concurrent use by multiple goroutines. Amounts are
// handled as exact decimals ([kyapay.Amount]); there is no floating point.
package kyapaytest
