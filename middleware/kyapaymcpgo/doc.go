// Package kyapaymcpgo sells the tools of an MCP server built with
// github.com/mark3labs/mcp-go per call, with Skyfire KYAPay tokens.
//
// It is a front end on the transport-neutral gate of
// [github.com/kyapay/kyapay-go/middleware]: one [middleware.Middleware]
// (verifier, charger, refusal policy, logger) serves HTTP routes and MCP
// tools alike, with the same [middleware.Requirement] values and the same
// refusal codes. It lives in a module of its own so that users of the rest
// of the library never download mcp-go.
//
// Declare a requirement per tool (unlisted tools are free) and install the
// gate on the server:
//
//	g, err := kyapaymcpgo.New(m, kyapaymcpgo.Config{Tools: map[string]kyapaymcpgo.Requirement{
//		"quote":  {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
//		"whoami": {Requirement: middleware.Identity("email")},
//	}})
//	...
//	s := server.NewMCPServer("seller", "1.0.0", server.WithInputSchemaValidation())
//	s.AddTool(quoteTool, quote)
//	g.Install(s)
//
// or register each gated tool with its requirement through the per-tool
// form, which gates it even where Install was forgotten:
//
//	st, err := g.Tool(quoteTool, req, quote) // g.TaskTool for task tools
//	s.AddTools(st)
//
// [Gate.MustTool] and [Gate.MustTaskTool] panic where these return an
// error, for set-up code. Inside a handler the verified claims are
// [kyapay.FromContext] and, on a ChargeBefore tool, the receipt is
// [middleware.ReceiptFromContext], as for HTTP handlers.
//
// The names, texts and shapes below (the token's places, the tools/list
// decorations, refusals and receipts) come from [mcpgate], the part of the
// gate that no MCP SDK shapes, so they are those of
// github.com/kyapay/kyapay-go/middleware/kyapaymcp, the front end for the
// official MCP Go SDK, too, word for word.
//
// # Where the token comes from
//
// A tool call may carry the token in these places, read in this order: the
// HTTP header of a streamable-HTTP request (the Middleware's header,
// skyfire-pay-id by default); the request's _meta, under [Config.MetaKey]
// ([DefaultMetaKey], "xyz.skyfire/pay-id") or under the header name; and
// the tool argument ([Config.Argument], [DefaultArgument],
// "skyfire-pay-id"). An LLM usually hands it over as the argument: it
// cannot set headers. The same token in several places is fine; two
// different tokens are refused with token_ambiguous, two header lines too,
// and a token that is not a string with token_malformed. The argument is
// removed before mcp-go validates the arguments and before the handler
// sees them (from Arguments and from RawArguments, which BindArguments and
// typed handlers read), and so are the _meta entries; the token is never
// logged.
//
// # What tools/list shows
//
// Each gated tool is listed with the argument as a string property whose
// description tells an LLM what token to send, its price in USD and when it
// is charged, the identity fields it needs, and where to create one; a line
// saying the same in short appended to its description; and a *[ToolInfo]
// in its _meta under [ToolMetaKey] with the accepted types and price. With
// Install these are added to copies: the tools mcp-go stores, and their
// shared schema maps, are never changed. A RawInputSchema is patched as
// JSON.
//
// # When a call is charged
//
// A priced tool charges after its handler returned a final, complete
// result: no Go error, not isError, and not a result that asks the client
// for more input (a multi-round-trip round; the final round pays, once).
// If Skyfire declines the charge, or its outcome is unknown, the tool's
// output is withheld and the agent gets the refusal instead; an unknown
// outcome never asks it to pay again. A priced tool whose [Requirement]
// sets ChargeBefore charges before its handler runs, and is charged even
// if the handler then fails. Identity tools are never charged.
//
// A refusal is a CallToolResult with isError set, the Middleware's text in
// its content (followed, where a token would help, by a sentence naming
// the argument) and a [middleware.RefusalDetail] (code, accepted types,
// required amount, header, argument and _meta key) as its
// structuredContent. A charged result carries a *[Receipt] in its _meta
// under [ReceiptMetaKey]: {"amountCharged": "0.01", "remainingBalance":
// "9.99"} in JSON.
// Protocol methods (initialize, ping, tools/list, notifications) are never
// gated.
//
// # Retries pay once: idempotent calls
//
// An agent that retries a paid call (a dropped connection, a timeout)
// pays once if it sends an idempotency key in the request's _meta, under
// [IdempotencyMetaKey] ("xyz.skyfire/idempotency-key"), the MCP form of
// the Idempotency-Key header of HTTP routes:
//
//	{"name": "quote", "arguments": {"symbol": "ACME"},
//	 "_meta": {"xyz.skyfire/idempotency-key": "order-42"}}
//
// The key is scoped to the token and the tool and bound to the call's
// arguments (without the token argument, in a canonical form; from
// RawArguments when mcp-go kept them, so large numbers compare exactly).
// The first call with a key runs, and its result, receipt included, is
// stored. A duplicate while it runs gets an isError result with code
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
// not stored either: a retry of such a charged call (a ChargeBefore call
// that stopped at a round asking for input) runs the tool again, without
// charging. Task tools ([Gate.TaskTool]) are idempotent too: the retry's
// task gets the stored result. Without a key nothing changes, and free and
// identity tools ignore it. The Middleware's Store holds the keys
// ([middleware.Config].Store), so replicas sharing a Store share them.
//
// # mcp-go specifics
//
//   - WithInputSchemaValidation validates arguments before the tool
//     middleware runs. Install therefore takes the token argument out in a
//     tools/call hook, which runs before validation; the per-tool form
//     declares the argument in the stored schema instead.
//   - For clients older than protocol 2026-07-28, mcp-go resolves a
//     multi-round-trip call on the server and re-invokes the middleware and
//     handler once per round. Only the final round is charged; a
//     ChargeBefore tool is charged in the first round, and with Install the
//     later rounds of the same call reuse that charge (the per-tool form
//     alone, without Install, cannot tell them apart and charges each).
//     Newer clients send each round as a tools/call of its own: the default
//     timing charges once, on the final round, while a ChargeBefore tool is
//     charged per round, so keep tools that ask for input on the default
//     timing.
//   - Tools registered with AddTaskTool run without any tool middleware:
//     register gated task tools with [Gate.TaskTool]. Install hides a gated
//     task tool registered without it (it is neither listed nor callable).
//     A regular tool that runs as a task is gated by the middleware. mcp-go
//     ends the context of a task as soon as it has answered the tools/call;
//     the gate verifies and charges a task on a context that outlives it.
//   - WithOutputSchemaValidation checks a result after the middleware
//     chain: a result that fails it has already been charged, so keep
//     output schemas accurate on paid tools.
package kyapaymcpgo
