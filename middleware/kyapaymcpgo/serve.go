package kyapaymcpgo

import (
	"context"
	"maps"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
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
func serve[R any](g *Gate, ctx context.Context, t *tool, req mcp.CallToolRequest, next func(context.Context, mcp.CallToolRequest) (R, error), ops resultOps[R]) (R, error) {
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
	handlerCtx := func(vals context.Context) context.Context { return context.WithValue(vals, gatedKey{}, t.name) }
	if req.Params.Task != nil {
		gctx = context.WithoutCancel(ctx)
		handlerCtx = func(vals context.Context) context.Context {
			return valuesFrom{Context: ctx, vals: context.WithValue(vals, gatedKey{}, t.name)}
		}
	}

	if st != nil && st.grant != nil {
		// A later round of a ChargeBefore call that mcp-go re-invokes for a
		// legacy client: the first round paid for the call.
		res, err := next(handlerCtx(st.grant.Context()), req)
		if err == nil && ops.complete(res) {
			res = withReceipt(res, st.grant, ops)
		}
		return res, err
	}

	actx := context.WithValue(gctx, requestKey{}, &req)
	grant, err := g.m.Authorize(actx, t.route, middleware.Input{Token: tok, TokenErr: tokErr})
	if err != nil {
		return ops.refusal(g.refusal(err)), nil
	}
	if st != nil && t.before {
		st.grant = &grant
	}
	res, herr := next(handlerCtx(grant.Context()), req)
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
	return ops.receipt(res, receiptMeta(ops.meta(res), rc))
}

// refusal renders a refusal as the isError result an agent reads: the
// Middleware's text, with where to put the token in MCP, and the detail as
// structuredContent.
func (g *Gate) refusal(err error) *mcp.CallToolResult {
	ref, d := g.m.Describe(err)
	d.Argument = g.arg
	if !isOneOf(ref.Code(), kyapay.CodeChargeUnknown, kyapay.CodeChargeMismatch, kyapay.CodeChargeUnavailable,
		kyapay.CodeInternal, kyapay.CodeKeysUnavailable) {
		d.Message += ` In this MCP tool, pass the token as the "` + g.arg + `" argument.`
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{mcp.NewTextContent(d.Message)},
		StructuredContent: d,
		IsError:           true,
	}
}

// receiptMeta returns meta (not changed) with the receipt added.
func receiptMeta(meta *mcp.Meta, rc charge.Receipt) *mcp.Meta {
	c := &mcp.Meta{}
	if meta != nil {
		c.ProgressToken = meta.ProgressToken
		c.AdditionalFields = maps.Clone(meta.AdditionalFields)
	}
	if c.AdditionalFields == nil {
		c.AdditionalFields = make(map[string]any, 1)
	}
	r := map[string]any{"amountCharged": rc.AmountCharged.String()}
	if rc.HasRemainingBalance {
		r["remainingBalance"] = rc.RemainingBalance.String()
	}
	c.AdditionalFields[ReceiptMetaKey] = r
	return c
}

// valuesFrom is a context with the deadline and cancellation of Context and
// the values of vals.
type valuesFrom struct {
	context.Context
	vals context.Context
}

func (v valuesFrom) Value(key any) any { return v.vals.Value(key) }
