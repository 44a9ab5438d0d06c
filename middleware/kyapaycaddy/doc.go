// Package kyapaycaddy is a Caddy module that puts KYAPay in front of any
// HTTP API or MCP server: agents paying with Skyfire KYAPay tokens reach
// the upstream, which needs no change, and everyone else gets the 402.
//
// Build Caddy with it:
//
//	xcaddy build --with github.com/kyapay/kyapay-go/middleware/kyapaycaddy
//
// It adds the HTTP handler http.handlers.kyapay and the Caddyfile
// directive kyapay, built on the gate of
// [github.com/kyapay/kyapay-go/middleware] (the same verification,
// charging, refusals and logs as the Go middleware). Caddy's matchers
// choose the routes; each kyapay directive gives one route's requirement.
//
// # Caddyfile
//
//	{
//		kyapay {
//			seller_id {env.SKYFIRE_SELLER_ID}
//			api_key {env.SKYFIRE_API_KEY}
//		}
//	}
//
//	api.example.com {
//		kyapay /v1/quote 0.01               # pay or kya-pay token, 0.01 USD per request
//		kyapay /v1/report {
//			price 0.05
//			timing after                    # charge only a successful answer
//		}
//		kyapay /v1/profile {
//			identity email                  # kya or kya-pay token with hid.email
//		}
//		kyapay /mcp {
//			mcp {
//				tool search 0.01
//				tool fetch 0.05
//				tool help open
//			}
//		}
//		reverse_proxy localhost:9000
//	}
//
// The global option kyapay holds the settings shared by every route, and
// each directive may override any of them:
//
//	env            production (default) or sandbox: the env claim tokens must
//	               carry; picks the default issuer and API URL
//	issuer         trusted issuer(s); default https://app.skyfire.xyz
//	               (https://app-sandbox.skyfire.xyz in sandbox)
//	seller_id      required: the seller agent's account ID, the aud of its tokens
//	insecure_any_audience
//	               instead of seller_id: accept tokens issued for any seller
//	service_id     expected ssi (seller service ID); default: not checked
//	api_key        the seller's Skyfire API key, needed by routes that charge;
//	               write a placeholder ({env.SKYFIRE_API_KEY}, {file.PATH}):
//	               a key written out is visible in Caddy's admin API
//	api_key_file   a file holding the API key, instead of api_key
//	api_url        Skyfire's API; default https://api.skyfire.xyz
//	               (https://api-sandbox.skyfire.xyz in sandbox)
//	redis          redis://[[user]:password@]host[:port][/db] or rediss://…:
//	               the Redis server several Caddy instances share (below);
//	               default: none, each handler keeps its own memory
//	header         the token header; default skyfire-pay-id
//	status_policy  seed (default: Skyfire's 402 texts) or status_codes
//	charge_timeout bound of each charge call; default 15s
//	max_buffer     bound of a response held until its charge; default 16MiB
//
// The requirement of the route, in the directive only:
//
//	types     accepted token types: kya, pay, kya-pay (default: all, narrowed
//	          by price and identity)
//	identity  hid fields the token must carry: email, given_name, ...
//	price     USD per request, such as 0.01, or service (the service's price
//	          at Skyfire); also accepted as the directive's argument
//	timing    before (default) or after
//	format    refusal body: auto (default), text or json
//	name      the route's name in logs
//	mcp       an MCP endpoint priced per tool (below)
//
// Handlers with the same trust settings share one Verifier, whose cached
// keys survive config reloads; the last handler to go stops it. A reload
// closes the replaced handlers' background work (key refresh,
// reconciliation of charges, idle connections). Errors in
// the configuration name the directive and the field ("kyapay: seller_id:
// required ...").
//
// The directive is ordered with the authentication directives (after
// forward_auth), so a site-wide kyapay guards the site's handle and route
// blocks, and runs before reverse_proxy, file_server and respond.
//
// Every kyapay directive whose matcher matches a request applies, in
// Caddy's order, to the same token (the first takes the header off the
// request and keeps the token for the others): a site-wide identity
// requirement and a price inside a handle block both hold. Priced
// directives whose matchers overlap charge each price, so give each request
// one priced directive (Caddy's not matcher helps).
//
// # Several Caddy instances, retries and unknown outcomes
//
// A paid request may carry an Idempotency-Key header: its first delivery
// is charged once and its response (up to 64KiB) kept; a retry with the
// same key and token, of the same request (method, path, query and body),
// gets that response back with
// Idempotent-Replayed: true, without a new charge and without calling the
// upstream (409 while the first still runs, 422 for the same key on
// another request). A charge whose outcome is unknown (a timeout, a 5xx) is
// settled by looking it up in the token's charges, in the background and
// when the agent retries under the same key. What is known of a token's
// balance is remembered too, so a depleted token is refused without a
// charge call.
//
// Without redis that state lives in each handler's memory: a reload starts
// afresh, and behind a load balancer each Caddy instance knows only its
// own. With redis every handler naming the same server shares it, across
// reloads and across instances:
//
//	{
//		kyapay {
//			seller_id {env.SKYFIRE_SELLER_ID}
//			api_key   {env.SKYFIRE_API_KEY}
//			redis     {env.KYAPAY_REDIS_URL}   # redis://:PASSWORD@10.0.0.5:6379/0
//		}
//	}
//
// The URL is the one go-redis parses (its query options, such as pool_size
// or dial_timeout, are accepted; a password with reserved characters is
// percent-encoded); rediss:// connects with TLS. Keep the password out of
// the config with a placeholder, as for api_key: a password written out is
// warned about, and errors and logs show only the scheme, host, port and
// database. Handlers with the same URL share one client, kept across
// reloads and closed with the last handler that uses it; the server must
// answer a PING when the configuration is loaded (within 5s), or the load
// fails with an error naming redis and the server. The records live under
// keys starting with kyapay: and expire with their tokens (24 hours after
// exp); free and identity-only routes never touch Redis. See
// [github.com/kyapay/kyapay-go/middleware/kyapayredis].
//
// # What the upstream sees
//
// The token header is removed before the upstream, and so is every
// client-sent request header in the Kyapay- namespace (in any case, and
// spelled with '_' or '.' as well), on every request through the handler.
// An accepted request then carries the verified identity:
//
//	Kyapay-Subject     the buyer agent's ID (sub)
//	Kyapay-Token-Type  kya, pay or kya-pay
//	Kyapay-Token-Id    the token's jti
//	Kyapay-Email       hid.email, when the token carries one
//	Kyapay-Charged     the amount Skyfire confirmed charging (timing before)
//	Kyapay-Price       the amount that will be charged if the upstream answers
//	                   with a chargeable status (timing after, and conditional
//	                   requests on any priced route)
//
// The same values are the placeholders {kyapay.subject},
// {kyapay.token_type}, {kyapay.token_id}, {kyapay.email},
// {kyapay.charged} and {kyapay.price}, for the rest of the route and the
// access log ({kyapay.charged} is set after the charge in both timings).
//
// # Charging before and after
//
// With timing before (the default) the token is charged before the
// upstream is called, and the upstream's answer streams through as it
// comes; an upstream failure after the charge is not refunded. With timing
// after, the upstream's whole response is held (up to max_buffer) and
// charged only if it delivers content: a 2xx other than 204 and 205, to
// anything but HEAD. An upstream that reverse_proxy cannot reach (the 502
// it reports as an error), an error status, a response cut short or one
// larger than max_buffer is not charged, and the client gets the error
// instead of a partial answer.
//
// Streams cannot be held until a charge is confirmed: on a timing after
// route, an upstream answering text/event-stream, a protocol upgrade
// (WebSocket) or an extended CONNECT is refused with 502, neither delivered
// nor charged, and the error log says to use timing before. Put SSE,
// WebSocket and MCP streamable HTTP endpoints on timing before routes; an
// mcp route with timing after is a configuration error.
//
// # MCP
//
// With an mcp block the route is a JSON-RPC endpoint. The handler reads the
// request body (at most max_body, default 1MiB; a larger one is refused
// with 413), restores it for the upstream, and gates only tools/call: its
// tool name (params.name) picks the price from the tool lines, and tools
// not listed pay the directive's price. A tool's price is an amount,
// service, free (a token meeting the route's requirement, not charged) or
// open (no token). Every other method (initialize, tools/list,
// notifications), responses, and requests without a body (the GET event
// stream, DELETE) pass without a token. A body that is not a JSON-RPC
// message, or could be read two ways (a duplicate "method", "params" or
// "name", or another case of one, which some decoders match), and a batch
// holding a tools/call are refused with 400 and not forwarded. The token
// travels in the header, as for any route; mcp routes charge before.
//
// # Logs
//
// The module logs through Caddy's logger and never logs a token or the API
// key. Caddy itself logs the request headers in its access log and with
// handler errors (such as a 502 from reverse_proxy), and redacts only
// Cookie and Authorization: filter the token header out of every log,
// globally:
//
//	{
//		log {
//			format filter {
//				request>headers>Skyfire-Pay-Id delete
//			}
//		}
//	}
//
// and in each site's log directive the same way.
package kyapaycaddy
