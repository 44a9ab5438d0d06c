package kyapaymcpgo

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// resultOps adapts serve to a handler's result type: *mcp.CallToolResult
// for tools, *mcp.CreateTaskResult for task tools.
type resultOps[R any] struct {
	// final reports whether res is a complete, successful result that may
	// be charged: not nil, not isError, not a request for more input.
	final func(res R) bool
	// complete reports whether res is a result that can carry a receipt:
	// not nil and not a request for more input.
	complete func(res R) bool
	refusal  func(res *mcp.CallToolResult) R
	receipt  func(res R, meta *mcp.Meta) R
	meta     func(res R) *mcp.Meta
}

var callOps = resultOps[*mcp.CallToolResult]{
	final:    func(r *mcp.CallToolResult) bool { return r != nil && !r.IsError && !r.NeedsInput() },
	complete: func(r *mcp.CallToolResult) bool { return r != nil && !r.NeedsInput() },
	refusal:  func(r *mcp.CallToolResult) *mcp.CallToolResult { return r },
	meta:     func(r *mcp.CallToolResult) *mcp.Meta { return r.Meta },
	receipt: func(r *mcp.CallToolResult, meta *mcp.Meta) *mcp.CallToolResult {
		c := *r
		c.Meta = meta
		return &c
	},
}

var taskOps = resultOps[*mcp.CreateTaskResult]{
	final:    func(r *mcp.CreateTaskResult) bool { return r != nil && !r.IsError },
	complete: func(r *mcp.CreateTaskResult) bool { return r != nil },
	refusal: func(r *mcp.CallToolResult) *mcp.CreateTaskResult {
		return &mcp.CreateTaskResult{Content: r.Content, StructuredContent: r.StructuredContent, IsError: true}
	},
	meta: func(r *mcp.CreateTaskResult) *mcp.Meta { return r.Meta },
	receipt: func(r *mcp.CreateTaskResult, meta *mcp.Meta) *mcp.CreateTaskResult {
		c := *r
		c.Meta = meta
		return &c
	},
}

// serve gates one round of a call of t: it verifies the token, charges
// before the handler (ChargeBefore) or after a final, successful result,
// and answers a refusal, or a charge that failed, with an isError result in
// place of the handler's.
func serve[R any](g *Gate, ctx context.Context, t *mcpgate.Tool, req mcp.CallToolRequest, next func(context.Context, mcp.CallToolRequest) (R, error), ops resultOps[R]) (R, error) {
	st := stateOf(req.Params.Meta)
	var tok string
	var tokErr error
	if st != nil {
		tok, tokErr = st.token, st.err
	} else {
		// The hook did not run (a per-tool wrapper without Install): take
		// the token out here.
		tok, tokErr = g.resolve(&req)
	}
	req.Params.Meta = g.cleanMeta(req.Params.Meta)

	// A task runs after mcp-go has answered the tools/call, and mcp-go
	// ends the context it hands the task with that request: the gate's own
	// work (verifying, charging) must not depend on it. The handler keeps
	// mcp-go's context, with the gate's values.
	gctx := ctx
	task := req.Params.Task != nil
	if task {
		gctx = context.WithoutCancel(ctx)
	}
	// handlerCtx is grant's context for the handler, on ctx when the grant
	// was made on another context.
	handlerCtx := func(grant *middleware.Grant, own bool) context.Context {
		hctx := grant.Context()
		if !own {
			hctx = context.WithValue(grant.ContextOn(ctx), requestKey{}, &req)
		}
		return context.WithValue(hctx, gatedKey{}, t)
	}

	if st != nil && st.grant != nil {
		// A later round of a ChargeBefore call that mcp-go re-invokes for a
		// legacy client: the first round paid for the call.
		res, err := next(handlerCtx(st.grant, false), req)
		if err == nil && ops.complete(res) {
			res = withReceipt(res, st.grant, ops)
		}
		return res, err
	}

	actx := context.WithValue(gctx, requestKey{}, &req)
	grant, err := g.core.Authorize(actx, t, middleware.Input{Token: tok, TokenErr: tokErr})
	if err != nil {
		return ops.refusal(g.refusal(err)), nil
	}
	if st != nil && t.ChargeBefore() {
		st.grant = &grant
	}
	res, herr := next(handlerCtx(&grant, !task), req)
	if !grant.Pending() {
		if herr == nil && ops.complete(res) {
			res = withReceipt(res, &grant, ops)
		}
		return res, herr
	}
	if herr != nil || !ops.final(res) {
		// Not charged: a Go error, an isError result, or a round that asks
		// for more input (the final round pays).
		grant.Abandon()
		return res, herr
	}
	if _, err := grant.Commit(gctx); err != nil {
		// Declined or unknown: the output is withheld.
		return ops.refusal(g.refusal(err)), nil
	}
	return withReceipt(res, &grant, ops), nil
}

// withReceipt returns res with the grant's receipt in its _meta, if the
// call was charged; res itself is not changed.
func withReceipt[R any](res R, grant *middleware.Grant, ops resultOps[R]) R {
	rc, ok := grant.Receipt()
	if !ok {
		return res
	}
	return ops.receipt(res, withFields(ops.meta(res), func(f map[string]any) map[string]any { return mcpgate.ReceiptMeta(f, rc) }))
}

// refusal renders a refusal as the isError result an agent reads: the
// Middleware's text, with where to put the token in MCP, and a
// [middleware.RefusalDetail] as structuredContent.
func (g *Gate) refusal(err error) *mcp.CallToolResult {
	d := g.core.RefusalDetail(err)
	return &mcp.CallToolResult{
		Content:           []mcp.Content{mcp.NewTextContent(d.Message)},
		StructuredContent: d,
		IsError:           true,
	}
}
