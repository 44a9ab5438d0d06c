package kyapaymcpgo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
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
	// stored is res in the shape of a tool result, stored as JSON for
	// replay; fromStored is the inverse.
	stored     func(res R) *mcp.CallToolResult
	fromStored func(res *mcp.CallToolResult) R
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
	stored:     func(r *mcp.CallToolResult) *mcp.CallToolResult { return r },
	fromStored: func(r *mcp.CallToolResult) *mcp.CallToolResult { return r },
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
	stored: func(r *mcp.CreateTaskResult) *mcp.CallToolResult {
		return &mcp.CallToolResult{Result: mcp.Result{Meta: r.Meta}, Content: r.Content, StructuredContent: r.StructuredContent, IsError: r.IsError}
	},
	fromStored: func(r *mcp.CallToolResult) *mcp.CreateTaskResult {
		return &mcp.CreateTaskResult{Result: mcp.Result{Meta: r.Meta}, Content: r.Content, StructuredContent: r.StructuredContent, IsError: r.IsError}
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

	in := middleware.Input{Token: tok, TokenErr: tokErr}
	var err error
	in.IdempotencyKey, in.Fingerprint, err = t.Idempotency(metaFields(req.Params.Meta), callArguments(&req.Params))
	if errors.Is(err, mcpgate.ErrArgumentsNotObject) {
		var zero R
		return zero, fmt.Errorf("kyapaymcpgo: %w", err)
	}
	if err != nil {
		return ops.refusal(g.refusal(err)), nil
	}
	actx := context.WithValue(gctx, requestKey{}, &req)
	grant, err := g.core.Authorize(actx, t, in)
	if err != nil {
		return ops.refusal(g.refusal(err)), nil
	}
	if stored, ok := grant.Replay(); ok {
		return replay(g, stored, &grant, ops), nil
	}
	// finish records how a call with an idempotency key ended: res is
	// stored for replay when ok, nothing otherwise.
	keyed := in.IdempotencyKey != ""
	finish := func(res R, ok bool) {
		switch {
		case !keyed:
		case ok:
			_ = mcpgate.Finish(gctx, &grant, ops.stored(res))
		default:
			_ = mcpgate.Finish(gctx, &grant, nil)
		}
	}
	if st != nil && t.ChargeBefore() {
		st.grant = &grant
	}
	res, herr := next(handlerCtx(&grant, !task), req)
	if !grant.Pending() {
		// Charged before (a round that asks for input is not stored: a
		// retry runs the tool again, without charging), or free.
		ok := herr == nil && ops.complete(res)
		if ok {
			res = withReceipt(res, &grant, ops)
		}
		finish(res, ok)
		return res, herr
	}
	if herr != nil || !ops.final(res) {
		// Not charged: a Go error, an isError result, or a round that asks
		// for more input (the final round pays).
		grant.Abandon()
		finish(res, false)
		return res, herr
	}
	if _, err := grant.Commit(gctx); err != nil {
		// Declined or unknown: the output is withheld. It is kept for a
		// retry under the same key if the charge is found made.
		finish(res, true)
		return ops.refusal(g.refusal(err)), nil
	}
	res = withReceipt(res, &grant, ops)
	finish(res, true)
	return res, nil
}

// replay is the stored result of an earlier call with the same idempotency
// key, marked as replayed.
func replay[R any](g *Gate, stored []byte, grant *middleware.Grant, ops resultOps[R]) R {
	var r mcp.CallToolResult
	if err := json.Unmarshal(stored, &r); err != nil {
		return ops.refusal(g.refusal(kyapay.NewError(kyapay.CodeInternal, "", fmt.Errorf("kyapaymcpgo: stored result: %w", err))))
	}
	res := ops.fromStored(&r)
	return ops.receipt(res, withFields(ops.meta(res), func(f map[string]any) map[string]any { return mcpgate.ReplayMeta(f, grant) }))
}

// metaFields returns the fields of a request _meta, nil for none.
func metaFields(meta *mcp.Meta) map[string]any {
	if meta == nil {
		return nil
	}
	return meta.AdditionalFields
}

// callArguments returns the arguments of a call as the client sent them
// when mcp-go kept their JSON, with numbers exact, else as decoded.
func callArguments(p *mcp.CallToolParams) any {
	if len(p.RawArguments) > 0 {
		return p.RawArguments
	}
	return p.Arguments
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
// [middleware.RefusalDetail] as structuredContent; or, for an idempotency
// key that cannot be honoured, an [mcpgate.IdempotencyDetail].
func (g *Gate) refusal(err error) *mcp.CallToolResult {
	text, detail := g.core.ErrorResult(err)
	return &mcp.CallToolResult{
		Content:           []mcp.Content{mcp.NewTextContent(text)},
		StructuredContent: detail,
		IsError:           true,
	}
}
