// Package middleware protects net/http handlers with KYAPay tokens.
//
// A [Middleware] is built once from a [kyapay.Verifier] and, for paid routes,
// a charge client. Each route then gets one call that wraps its handler with
// a [Requirement]: which token types it accepts, which identity fields it
// needs, and what it costs. The flow of a request is
//
//	header → verify → requirement → charge → handler → response
//
// and any refusal goes to one responder that renders the error code as the
// plain-text message Skyfire recommends or as MCP-style JSON.
//
// # Replicas, idempotency and unknown outcomes
//
// What the gate must share between a seller's replicas lives in a [Store]:
// known balances, idempotency records ([IdempotencyKeyHeader]) and charges
// whose outcome is unknown. The default [MemoryStore] is private to one
// Middleware; the kyapayredis module shares it through Redis. A charge of
// unknown outcome is resolved through the token's charges listing
// ([ChargeLister], [Middleware.Reconcile]) by a background loop that
// [Middleware.Close] stops.
package middleware
