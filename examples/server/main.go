// Command server is an example seller API that sells to AI agents paying
// with Skyfire KYAPay tokens. It is configured only by environment
// variables, so it can be tried against the Skyfire sandbox or any other
// issuer:
//
//	Variable            Default / meaning
//	KYAPAY_ADDR         127.0.0.1:8080; host:port to listen on (port 0: any free port)
//	KYAPAY_ISSUER       required; the trusted iss, e.g. https://app-sandbox.skyfire.xyz
//	KYAPAY_JWKS_URL     KYAPAY_ISSUER + /.well-known/jwks.json
//	KYAPAY_API_BASE     charge API base URL; https://api-sandbox.skyfire.xyz for the
//	                    sandbox issuer, https://api.skyfire.xyz for the production
//	                    issuer, otherwise required
//	SKYFIRE_API_KEY     the seller agent's API key (never logged); this or
//	                    SKYFIRE_API_KEY_FILE is required, not both
//	SKYFIRE_API_KEY_FILE
//	                    path of a file holding the API key (one trailing line
//	                    break allowed), such as a mounted Kubernetes secret; read
//	                    at start, and again whenever the charge API refuses the
//	                    key, so a rotated key needs no restart (see below)
//	KYAPAY_SELLER_ID    required; the seller agent's account ID, the expected aud,
//	                    unless KYAPAY_INSECURE_SKIP_AUDIENCE is 1
//	KYAPAY_INSECURE_SKIP_AUDIENCE
//	                    1: accept tokens issued for any seller (aud not checked);
//	                    only when the seller agent ID cannot be known
//	KYAPAY_SERVICE_ID   expected ssi (seller service ID); unset: not checked
//	KYAPAY_ENV          production or sandbox, the expected env claim; unset: the
//	                    Skyfire issuers' own env, other issuers not checked
//	KYAPAY_PRICE        0.01; USD charged per GET /pay, an exact decimal (at most
//	                    6 places, greater than zero, no exponent or sign)
//	KYAPAY_CHARGE_MODE  before (charge, then run the handler) or after (run the
//	                    handler with its response buffered, charge only if it
//	                    succeeded, then release the response)
//	KYAPAY_REDIS_URL    redis://[user:password@]host:port[/db] of the Redis that
//	                    replicas share (idempotency records, known balances,
//	                    charges of unknown outcome); unset: kept in memory
//	KYAPAY_METRICS_ADDR host:port of a separate listener serving Prometheus
//	                    metrics at /metrics (port 0: any free port); never
//	                    served on KYAPAY_ADDR; unset: no metrics
//
// An empty variable counts as unset. A bad configuration prints one line
// naming the variable(s) on stderr and exits with status 2; so does a
// SKYFIRE_API_KEY_FILE that cannot be read or does not hold a well-formed
// key (the line names the file, never its contents).
//
// To rotate the API key with SKYFIRE_API_KEY_FILE and no outage: create the
// new key at Skyfire, replace the file's contents atomically (write a new
// file and rename it over the old one; Kubernetes updates a mounted secret
// atomically already), then delete the old key. The charge client keeps using the key
// it has until the charge API answers 401; it then re-reads the file and
// sends that charge once more with the new key (a 401 charged nothing), so
// no request fails. With SKYFIRE_API_KEY a new key needs a restart.
//
// With KYAPAY_METRICS_ADDR, GET /metrics on that address serves the
// middleware's metrics (github.com/kyapay/kyapay-go/middleware/kyapayprom:
// kyapay_requests_total, kyapay_charges_total, kyapay_charged_usd_total,
// kyapay_charge_duration_seconds, key refreshes, ...) and the Go runtime
// and process collectors, from a registry of the server's own. The route
// label is the mux pattern ("GET /pay") or the MCP tool; no label carries
// a token, jti or buyer. Keep the address off the public network, or behind
// the scraper's own authentication: the page is not protected.
//
// Routes:
//
//	GET /kya       any valid token carrying identity (kya or kya-pay); answers
//	               the buyer's identity claims as JSON (never the token)
//	GET /pay       a pay or kya-pay token, charged KYAPAY_PRICE per request;
//	               answers the charge receipt as JSON
//	GET /llms.txt  how agents use and pay for this service
//	GET /healthz   200 "ok", unprotected
//	POST /mcp      an MCP server with paid tools (see below)
//
// POST /mcp is an MCP server (streamable HTTP, stateless, JSON responses)
// built with the official MCP Go SDK and gated per tool by
// github.com/kyapay/kyapay-go/middleware/kyapaymcp:
//
//	quote   a pay or kya-pay token, charged KYAPAY_PRICE per call, before the
//	        tool runs or only once it succeeded (KYAPAY_CHARGE_MODE); answers
//	        the charge receipt as GET /pay does
//	whoami  a kya or kya-pay token carrying an email; answers the buyer's
//	        identity claims as GET /kya does
//	echo    free; answers its arguments
//
// An agent's model passes its token as the skyfire-pay-id argument of the
// tool, which tools/list advertises with the price; a client program may
// send it in the skyfire-pay-id header or in the request's
// _meta["xyz.skyfire/pay-id"] instead. A refusal is a tool result with
// isError set, Skyfire's text in its content and the code, accepted types
// and price in its structuredContent; a charged call carries its receipt in
// the result's _meta["xyz.skyfire/receipt"]. initialize, tools/list and the
// other protocol methods need no token. For example:
//
//	curl -s http://127.0.0.1:8080/mcp -H 'Content-Type: application/json' \
//	  -H 'Accept: application/json, text/event-stream' \
//	  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call",
//	       "params":{"name":"quote","arguments":{"skyfire-pay-id":"'"$TOKEN"'"}}}'
//
// Logs are JSON lines on stderr (log/slog): the effective configuration at
// start-up (API key redacted; a key file by its path), the listening
// address ("msg":"listening","addr":...) and the metrics listener's
// ("msg":"metrics listening","addr":...), one line per API request (method, path, status, duration, and the
// refusal code when the middleware refused it), the middleware's charge log,
// and JWKS refresh failures. Tokens and the API key are never logged.
//
// SIGINT or SIGTERM shuts the server down gracefully: in-flight requests
// (including their charges) get up to 20 seconds to finish; the metrics
// listener stops after the API's.
//
// Try it against the sandbox:
//
//	KYAPAY_ISSUER=https://app-sandbox.skyfire.xyz KYAPAY_ENV=sandbox \
//	SKYFIRE_API_KEY=... KYAPAY_SELLER_ID=... KYAPAY_SERVICE_ID=... \
//	go -C examples run ./server
//	curl -H "skyfire-pay-id: $TOKEN" http://127.0.0.1:8080/pay
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Getenv, os.Stderr))
}
