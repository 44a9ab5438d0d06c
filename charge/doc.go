// Package charge is a client for Skyfire's seller APIs: charging a buyer's
// KYAPay pay token, introspecting a token and listing a token's charges.
//
// Create one [Client] per process (per API key) with [New] and share it; it
// is safe for concurrent use and keeps a keep-alive connection pool.
//
//	c, err := charge.New(charge.Config{
//		BaseURL: charge.ProductionBaseURL,
//		APIKey:  charge.APIKey(os.Getenv("SKYFIRE_API_KEY")),
//	})
//	receipt, err := c.Charge(ctx, token, kyapay.MustParseAmount("0.01"))
//
// # Did the charge happen?
//
// Skyfire's charge API has no idempotency key, so a charge that is sent
// twice may be charged twice. Every failure is an [*Error] whose [Outcome]
// says what is known about the money:
//
//   - [OutcomeDeclined]: Skyfire refused (4xx). Nothing was charged; the
//     agent may pay again, e.g. with a 402 and a new token when the Reason is
//     [ReasonInsufficientBalance].
//   - [OutcomeUnknown]: the request may have reached Skyfire and no
//     definite answer came back (timeout or lost connection after sending,
//     5xx, an unparseable 2xx). Do not answer 402: the agent would pay
//     twice. Answer with a server error, keep the token and reconcile later
//     with [Client.TokenCharges].
//   - [OutcomeNotSent]: nothing left this process (bad arguments, DNS or
//     dial failure, context done before a connection was obtained). Nothing
//     was charged.
//
// Whether a request may have been sent is decided with net/http/httptrace:
// once the Transport has a connection for the request (GotConn), or has
// written any part of it, a failure is OutcomeUnknown. Only OutcomeNotSent
// failures are retried (Config.MaxRetries); nothing else ever is. Redirects
// are never followed.
//
// Use [OutcomeOf], or errors.Is with [ErrDeclined], [ErrUnknownOutcome],
// [ErrNotSent] and [ErrInsufficientBalance]. A timed-out call also matches
// context.DeadlineExceeded, a cancelled one context.Canceled.
//
// # Status and code mapping
//
// Non-2xx answers carry Skyfire's envelope
// {"code":"...","message":"...","details":{...}}. 4xx is OutcomeDeclined
// (nothing was charged) with a Reason from the code or, without a known
// code, the status; 5xx, 1xx and 3xx are OutcomeUnknown:
//
//	code (status)                              Reason
//	INSUFFICIENT_BALANCE, INSUFFICIENT_FUNDS,  insufficient_balance
//	  TOKEN_DEPLETED
//	PAYMENT_ERROR (402), PAYMENT_DECLINED      insufficient_balance when the message names the
//	  (400), or 402 without a code               balance ("balance", "insufficient", "exceeds",
//	                                             "depleted", "exhausted", "not enough", "funds")
//	                                             and no transient failure; otherwise
//	                                             payment_failed (for example "network timeout",
//	                                             "payment could not be completed")
//	NOT_AUTHORIZED, UNAUTHORIZED (401)         api_key_rejected (the seller's key; see below)
//	FORBIDDEN (403)                            token_rejected
//	BAD_REQUEST (400), VALIDATION_ERROR (422), invalid_request
//	  NOT_FOUND (404)
//	NOT_ELIGIBLE (409)                         not_eligible
//	any code with 429, RATE_LIMITED            rate_limited
//
// Skyfire documents no code that tells a spent token from other payment
// failures, so the message decides. Only [ReasonInsufficientBalance] is
// evidence that the token cannot pay this amount (remember it as spent);
// [ReasonPaymentFailed] may be transient (do not).
//
// # API key rotation
//
// A [Config.KeySource] (for example [FileKey] on a mounted Kubernetes
// secret) lets the key change while the process runs. The Client reads it
// when created and again when the API answers 401 NOT_AUTHORIZED: with a
// new key it sends the request once more (a 401 charged nothing). A 401
// that persists is [ReasonAPIKeyRejected], an operator error: answer the
// buyer 503, never 402 or 401. Rotate by creating the new key, updating
// the source, then deleting the old key.
//
// # Rate limits
//
// A 429 charged nothing. When its Retry-After fits in what is left of the
// call's Timeout, the Client waits and tries again (at most three times);
// otherwise it returns [ReasonRateLimited] with [Error.RetryAfter] set, for
// the caller to pass on as the Retry-After of a 503.
//
// # Secrets
//
// [APIKey] prints as "[REDACTED]" through fmt, log/slog and encoding/json.
// Errors never contain the token or the key: upstream text is scrubbed and
// clipped before it is put in an [Error]. Scrubbing removes every
// occurrence of the token and the key, anything JWT-shaped, and every run
// of base64 characters (with dots) that shares 16 or more consecutive
// characters with the token or the key, so a token echoed wrapped at 64
// columns, split at spaces or reduced to its signature is removed too.
// [Introspection.Raw] is scrubbed the same way and stays valid JSON.
//
// # Money
//
// Amounts are [kyapay.Amount] values, exact to the micro-dollar, sent and
// parsed as decimal strings. No floating point is involved.
package charge
