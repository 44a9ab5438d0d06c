// Package mcpgate is the part of selling MCP tools through the gate of a
// [middleware.Middleware] that does not depend on an MCP SDK: per-tool
// requirements, where the token of a tool call is found, what tools/list
// advertises, the shapes of refusals and receipts, and idempotent calls.
//
// The front ends github.com/kyapay/kyapay-go/middleware/kyapaymcp (for the
// official MCP Go SDK) and github.com/kyapay/kyapay-go/middleware/kyapaymcpgo
// (for github.com/mark3labs/mcp-go) are built on it, so that they take the
// same [Config], find the token in the same places and describe tools,
// refusals and receipts in the same words and shapes. Their Requirement,
// Config, ToolInfo and Receipt are this package's types under their own
// names; a seller using one of them need not import this package. It is
// for writing a front end: the SDK-specific part (installing the gate on a
// server, wrapping handlers, decorating the SDK's tool types, turning a
// refusal into the SDK's tool result) stays there.
//
// # Requirements
//
// [New] validates a [Config] once: the tools it sells, each with a
// [Requirement] (a [middleware.Requirement] and whether the tool charges
// before it runs), and the names of the tool argument and the _meta key
// that carry the token. [Gate.Tool] returns the compiled [Tool] of a listed
// tool; [Gate.Compile] compiles the requirement of a tool registered on its
// own. [Gate.Authorize] runs a call of a tool through the Middleware's gate
// ([middleware.Middleware.Authorize]), so an MCP tool and an HTTP route
// with the same requirement accept, charge and refuse the same tokens.
//
// # The token
//
// A tool call may carry the token in these places, read in this order: the
// HTTP header of a streamable-HTTP request (the Middleware's header,
// skyfire-pay-id by default); the request's _meta, under [Config.MetaKey]
// ([DefaultMetaKey]) or under the header name; and the tool argument
// ([Config.Argument], [DefaultArgument]). A [Finder] collects what one call
// carries and decides: the same token in several places is one token; two
// different tokens are refused with token_ambiguous, two header lines too,
// and a token that is not a string with token_malformed.
// [Finder.Arguments] takes the argument out of a call's raw JSON arguments
// and [Gate.MetaWithoutToken] the entries out of its _meta, so that the
// tool never sees the token.
//
// # tools/list
//
// A gated tool is listed with the token argument added to its input schema
// ([Tool.DecorateSchema]), a string property whose description
// ([Tool.ArgumentDescription]) tells a model which token type to pass, the
// price in USD and when it is charged, the identity fields it needs and
// where to create a token; with a line saying the same in short appended
// to its description ([Tool.DecorateDescription]); and with a *[ToolInfo]
// under [ToolMetaKey] in its _meta ([Tool.DecorateMeta]) for programs.
//
// # Refusals and receipts
//
// A refused call is answered with a tool error result: isError, the
// message of [Gate.RefusalDetail] as its text content and the
// [middleware.RefusalDetail] itself as its structuredContent. The result of
// a charged call carries a *[Receipt] under [ReceiptMetaKey] in its _meta
// ([ReceiptMeta]).
//
// # Idempotent calls
//
// A call of a paid tool may carry an idempotency key in its request _meta,
// under [IdempotencyMetaKey] ("xyz.skyfire/idempotency-key"): the MCP form
// of the Idempotency-Key header of HTTP routes, with the same syntax and
// rules. An agent that retries a call after a dropped connection or a
// timeout sends the same key, and pays once. The key is scoped to the
// token (its issuer and jti) and the tool, and bound to the call's
// arguments, without the token argument and in a canonical form
// ([Tool.Idempotency]). The first call with a key reserves it, runs, and
// its result, receipt included, is stored ([Finish]). A duplicate while
// it runs is answered with idempotency_conflict and a retryAfterSeconds;
// a duplicate after it completed gets the stored result, with
// [ReplayedMetaKey] true in its _meta ([ReplayMeta]), without running the
// tool or charging; the same key with other arguments is answered with
// idempotency_key_reused. These answers are tool error results whose
// structuredContent is an [IdempotencyDetail] ([Gate.ErrorResult]); a key
// that is not valid gets idempotency_key_invalid. A call that was not
// charged (refused, a failed tool that charges after success, a charge
// declined) is not stored: the key is released, and the agent may fix its
// token and retry with it. A charge of unknown
// outcome keeps the key until the Middleware resolved it: the retry then
// gets the result (it was charged) or runs afresh (it was not). Without a
// key nothing changes: a token is multi-use, and each call is a new
// purchase. Free and identity tools ignore the key.
//
// A front end reads the key and the fingerprint with [Tool.Idempotency]
// into the [middleware.Input] it authorizes with, delivers
// [middleware.Grant.Replay] when there is one, and otherwise calls
// [Finish] once the tool returned and any pending charge was committed or
// abandoned.
package mcpgate
