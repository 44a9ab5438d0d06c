// Package kyapaymcp sells the tools of an MCP server built with the
// official MCP Go SDK ([github.com/modelcontextprotocol/go-sdk/mcp]) to AI
// agents paying with Skyfire KYAPay tokens, per tool and per call.
//
// Every gated call goes through the transport-neutral gate of a
// [middleware.Middleware] ([middleware.Middleware.Authorize]), so a tool
// accepts, charges and refuses tokens exactly as an HTTP route with the same
// [middleware.Requirement] does, with the same stable codes and texts. It
// lives in a module of its own so that users of the net/http middleware
// never download the MCP SDK.
//
// # Declaring paid tools
//
// Either list the tools once and install one receiving middleware:
//
//	g, err := kyapaymcp.New(m, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{
//		"quote":  {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
//		"whoami": {Requirement: middleware.Identity("email")},
//	}})
//	server.AddReceivingMiddleware(g.Middleware())
//
// or register each tool with its requirement, which installs the gate for
// that tool and cannot be forgotten:
//
//	err = kyapaymcp.AddTool(server, g, &mcp.Tool{Name: "quote"}, req, quoteHandler) // typed, as mcp.AddTool
//	err = g.AddTool(server, rawTool, req, rawHandler)                               // raw, as Server.AddTool
//
// [MustAddTool] and [Gate.MustAddTool] panic where these return an error,
// for set-up code.
//
// Tools not listed are free: the gate does not touch their calls. Protocol
// methods (initialize, server/discover, ping, tools/list, notifications)
// are never gated.
//
// # The token
//
// The gate takes the token from, in order: the HTTP header of the
// streamable-HTTP request (the Middleware's header, skyfire-pay-id by
// default, read from the SDK's RequestExtra.Header, never from the
// context, which in stateful sessions is the initialize request's); the
// request's _meta, under [Config.MetaKey] ([DefaultMetaKey],
// "xyz.skyfire/pay-id") or under the header name; and the tool argument
// ([Config.Argument], [DefaultArgument], "skyfire-pay-id"). An agent's model usually passes it as the argument,
// since it cannot set HTTP headers. The same token in several places is
// fine; two different tokens are refused with token_ambiguous, two header
// lines too, and a token that is not a string with token_malformed.
//
// The argument and the _meta entries are removed from every gated call
// before the SDK validates the tool's input and before the handler runs, so
// a typed tool with a strict schema (mcp.AddTool infers
// additionalProperties false for structs) accepts calls that carry the
// token, and no handler, log line or error text of the tool ever holds it.
// The gate logs no token either. Arguments that are not a JSON object are
// answered with a JSON-RPC invalid-params error.
//
// # tools/list
//
// Each gated tool is listed with the argument added to its input schema, a
// string property whose description tells a model which token type to pass,
// the price in USD and when it is charged, the identity fields it needs and
// where to create a token; with a line saying the same in short appended to
// its description; and with a *[ToolInfo] under [ToolMetaKey] in its _meta
// for programs. The SDK hands middleware its stored *mcp.Tool values, so
// the gate decorates copies and never changes a registered tool. The texts
// and the _meta entry come from [mcpgate], so they are those of
// github.com/kyapay/kyapay-go/middleware/kyapaymcpgo too, word for word.
//
// # Charging
//
// A paid tool charges after it succeeded unless its [Requirement] sets
// ChargeBefore: the handler runs first and only a final, complete result is
// charged, that is one with no Go error, without isError and not asking for
// more input (a multi round-trip input_required result; with clients of
// protocol versions before 2026-07-28 the SDK re-invokes the tool inside the
// server, below this middleware, and the gate sees the last result only).
// If Skyfire declines the charge or its outcome is unknown, the tool's
// output is withheld and the call gets the refusal instead; an unknown
// outcome (charge_unknown) never tells the agent to pay again. A
// ChargeBefore tool (only a priced tool may be one) is charged before it
// runs, whatever it returns, on each tools/call: tools that ask for input
// over several round trips should keep the default timing.
//
// The receipt of a charged call is added to the result's _meta under
// [ReceiptMetaKey] as a *[Receipt]: {"amountCharged": "0.01",
// "remainingBalance": "9.99"} in JSON.
//
// # Refusals
//
// A refused call gets a tool error result, isError true, so the model sees
// it and can correct itself: the Middleware's refusal text (Skyfire's seed
// text under [middleware.PolicySeed], followed, where a token would help,
// by a sentence naming the argument) in content, and a
// [middleware.RefusalDetail] with the code, accepted types, required
// amount, header, argument and _meta key in structuredContent.
//
// # Idempotent calls
//
// An agent that retries a paid call (a dropped connection, a timeout) pays
// once if it sends an idempotency key in the request's _meta, under
// [IdempotencyMetaKey] ("xyz.skyfire/idempotency-key"), the MCP form of
// the Idempotency-Key header of HTTP routes:
//
//	{"name": "quote", "arguments": {"symbol": "ACME"},
//	 "_meta": {"xyz.skyfire/idempotency-key": "order-42"}}
//
// The key is scoped to the token and the tool and bound to the call's
// arguments (without the token argument, in a canonical form). The first
// call with a key runs, and its result, receipt included, is stored. A
// duplicate while it runs gets an isError result with code
// idempotency_conflict and a retryAfterSeconds; a duplicate after it
// completed gets the stored result, with [ReplayedMetaKey] true in its
// _meta, without running the tool or charging; the same key with other
// arguments gets idempotency_key_reused, and a key that is not a string of
// 1 to 255 visible ASCII characters idempotency_key_invalid, each with an
// [mcpgate.IdempotencyDetail] ({error, message, retryAfterSeconds}) as
// structuredContent. A call that was not charged (refused, a failed tool
// that charges after success, a charge declined) is not stored, so the
// agent may fix its token and retry under the same key. A result that asks
// for more input, or one larger than the Middleware's MaxReplayBytes, is
// not stored either: a retry of such a charged call runs the tool again,
// without charging. Without a key nothing changes, and free and identity
// tools ignore it. The Middleware's Store holds the keys
// ([middleware.Config].Store), so replicas sharing a Store share them.
//
// # In the tool handler
//
// The handler reads the verified claims with [kyapay.FromContext] and, on
// a ChargeBefore tool, the receipt with [middleware.ReceiptFromContext], as
// an HTTP handler does. [RequestFromContext] gives a
// [middleware.ContextPrice] function the call, to price by its arguments;
// [middleware.PriceFunc] needs an HTTP request and is refused.
package kyapaymcp
