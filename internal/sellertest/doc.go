// Package sellertest wires a complete test seller (fake issuer, verifier
// with a real JWKS cache, charge client and middleware, all on one settable
// clock) for the tests of the middleware and its framework adapters.
package sellertest
