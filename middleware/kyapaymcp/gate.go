package kyapaymcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// Gate sells the tools of MCP servers built with the official MCP Go SDK.
// It runs every gated tool call through the transport-neutral gate of a
// [middleware.Middleware] (verification, requirement, price, charge,
// refusal texts), so an MCP tool and an HTTP route with the same
// requirement accept and refuse the same tokens.
//
// A Gate is safe for concurrent use. Build it with [New].
type Gate struct {
	core *mcpgate.Gate
}

// Middleware returns the receiving middleware that gates the tools listed
// in [Config.Tools]: install it once with
// server.AddReceivingMiddleware(g.Middleware()).
//
// On tools/call of a listed tool it takes the token from the HTTP header,
// the request's _meta or the tool argument, removes it from the arguments
// and _meta before the tool's input validation and handler see them, runs
// the gate and either answers the refusal as an error result or calls the
// tool with the claims (and, when charged before, the receipt) in its
// context; a charge-after tool is charged once its result is final and
// successful. A call with an idempotency key in its _meta
// ([IdempotencyMetaKey]) is replayed from its stored result when it
// repeats a completed call (see the package documentation). On tools/list it adds the argument and a [ToolInfo] to copies
// of the listed tools, and a line to their descriptions. Every other method
// (initialize, ping, server/discover, notifications, resources, prompts)
// and every unlisted tool pass through untouched.
//
// A receiving middleware cannot see which tools the server has: a
// ChargeBefore tool listed in Config.Tools but not registered would be
// charged before the SDK answers "unknown tool", so list only registered
// tools (or use [Gate.AddTool], which cannot differ).
func (g *Gate) Middleware() mcp.Middleware {
	return g.middleware(g.core.Tool)
}

// callKey is the context key of the gated call.
type callKey struct{}

// gatedCall marks a context as belonging to a call this gate has already
// decided, and carries the call as the tool will see it.
type gatedCall struct {
	gate *Gate
	tool string
	req  *mcp.CallToolRequest
}

// RequestFromContext returns the tool call being gated or served, as the
// tool sees it (the token removed from its arguments and _meta), and
// whether ctx belongs to one. A [middleware.ContextPrice] function reads
// the call's arguments through it.
func RequestFromContext(ctx context.Context) (*mcp.CallToolRequest, bool) {
	c, ok := ctx.Value(callKey{}).(*gatedCall)
	if !ok || c == nil {
		return nil, false
	}
	return c.req, true
}

// gated reports whether ctx is a call to the tool name that this gate has
// decided.
func (g *Gate) gated(ctx context.Context, name string) bool {
	c, ok := ctx.Value(callKey{}).(*gatedCall)
	return ok && c != nil && c.gate == g && c.tool == name
}

// middleware is the receiving middleware for the tools lookup knows.
func (g *Gate) middleware(lookup func(string) *mcpgate.Tool) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "tools/call":
				call, ok := req.(*mcp.CallToolRequest)
				if !ok || call == nil || call.Params == nil {
					break
				}
				t := lookup(call.Params.Name)
				if t == nil || g.gated(ctx, t.Name()) {
					break
				}
				return g.serveCall(ctx, t, call, next)
			case "tools/list":
				res, err := next(ctx, method, req)
				if lr, ok := res.(*mcp.ListToolsResult); ok && lr != nil && err == nil {
					return g.decorateList(lr, lookup), nil
				}
				return res, err
			}
			return next(ctx, method, req)
		}
	}
}

// serveCall gates one call of a gated tool.
func (g *Gate) serveCall(ctx context.Context, t *mcpgate.Tool, call *mcp.CallToolRequest, next mcp.MethodHandler) (mcp.Result, error) {
	found, err := g.takeToken(call)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	params := *call.Params
	params.Arguments, params.Meta = found.args, found.meta
	stripped := *call
	stripped.Params = &params
	ctx = context.WithValue(ctx, callKey{}, &gatedCall{gate: g, tool: t.Name(), req: &stripped})

	in := middleware.Input{Token: found.token, TokenErr: found.err}
	in.IdempotencyKey, in.Fingerprint, err = t.Idempotency(params.Meta, params.Arguments)
	if err != nil {
		return g.refusalResult(err), nil
	}
	grant, err := g.core.Authorize(ctx, t, in)
	if err != nil {
		return g.refusalResult(err), nil
	}
	if stored, ok := grant.Replay(); ok {
		return g.replayResult(stored, &grant), nil
	}
	keyed := in.IdempotencyKey != ""
	// finish records a keyed call's end: r is the result delivered, nil
	// when none is to be replayed.
	finish := func(r *mcp.CallToolResult) {
		if !keyed {
			return
		}
		if r == nil || !complete(r) {
			_ = mcpgate.Finish(ctx, &grant, nil)
			return
		}
		_ = mcpgate.Finish(ctx, &grant, r)
	}
	res, err := next(grant.Context(), "tools/call", &stripped)
	r, _ := res.(*mcp.CallToolResult)
	if grant.Pending() {
		if err != nil || !final(r) {
			grant.Abandon()
			finish(nil)
			return res, err
		}
		receipt, cerr := grant.Commit(ctx)
		if cerr != nil {
			// Kept for a retry if the charge's outcome is unknown and it is
			// found made; released otherwise.
			finish(r)
			if ctx.Err() != nil {
				return nil, ctx.Err() // the caller is gone; nothing charged
			}
			return g.refusalResult(cerr), nil
		}
		out := withReceipt(r, receipt)
		finish(out)
		return out, nil
	}
	if receipt, ok := grant.Receipt(); ok && err == nil && r != nil {
		out := withReceipt(r, receipt)
		finish(out)
		return out, nil
	}
	finish(nil)
	return res, err
}

// replayResult is the stored result of an earlier call with the same
// idempotency key, marked as replayed.
func (g *Gate) replayResult(stored []byte, grant *middleware.Grant) *mcp.CallToolResult {
	var r mcp.CallToolResult
	if err := json.Unmarshal(stored, &r); err != nil {
		return g.refusalResult(kyapay.NewError(kyapay.CodeInternal, "", fmt.Errorf("kyapaymcp: stored result: %w", err)))
	}
	r.Meta = mcpgate.ReplayMeta(r.Meta, grant)
	return &r
}

// complete reports whether r is a result that ends the call, successful or
// not, rather than asking the client for more input: only such a result
// is stored for replay.
func complete(r *mcp.CallToolResult) bool {
	return !r.NeedsInput() && r.InputRequests == nil
}

// final reports whether r is a final, successful tool result: the only
// kind a charge-after tool is charged for. An error result and a result
// that asks the client for more input (multi round-trip) are not.
func final(r *mcp.CallToolResult) bool {
	return r != nil && !r.IsError && complete(r)
}

// withReceipt returns a copy of r carrying the receipt in its _meta. The
// tool's own result is not modified: a handler may return a shared value.
func withReceipt(r *mcp.CallToolResult, rc charge.Receipt) *mcp.CallToolResult {
	out := *r
	out.Meta = mcpgate.ReceiptMeta(r.Meta, rc)
	return &out
}

// refusalResult renders a refusal from the gate as a tool error result:
// the caller-facing text in content, and in structuredContent a
// [middleware.RefusalDetail] with the argument and the _meta key, or an
// [mcpgate.IdempotencyDetail] for an idempotency key that cannot be
// honoured.
func (g *Gate) refusalResult(err error) *mcp.CallToolResult {
	text, detail := g.core.ErrorResult(err)
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: text}},
		StructuredContent: detail,
	}
}

// errNotGated refuses a call that reached a tool registered with AddTool
// without passing its gate.
var errNotGated = kyapay.NewError(kyapay.CodeInternal, "", errors.New("kyapaymcp: gated tool called without its gate"))
