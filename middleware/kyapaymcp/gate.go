package kyapaymcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Where the token travels and where the gate writes what it advertises.
const (
	// DefaultArgument is the tool argument that carries the token unless
	// [Config.Argument] says otherwise: the name Skyfire's buyer agents use.
	DefaultArgument = "skyfire-pay-id"
	// MetaKey is the key of the request's _meta under which a client may
	// send the token (params._meta["xyz.skyfire/pay-id"]). The gate also
	// accepts the token under the header name, _meta["skyfire-pay-id"].
	MetaKey = "xyz.skyfire/pay-id"
	// ToolMetaKey is the key of the [ToolInfo] the gate adds to the _meta of
	// every gated tool in tools/list.
	ToolMetaKey = "xyz.skyfire/kyapay"
	// ReceiptMetaKey is the key of the *[Receipt] the gate adds to the _meta
	// of the result of every charged call.
	ReceiptMetaKey = "xyz.skyfire/receipt"
)

// Requirement is what one tool demands of the caller's token: a
// [middleware.Requirement] (types, identity fields, price) and when a paid
// tool charges.
//
// A paid MCP tool charges after it succeeded unless ChargeBefore is set.
// The embedded Requirement's Timing is not read, because its zero value,
// ChargeBefore, cannot be told from "not set"; setting it to
// middleware.ChargeAfter together with ChargeBefore is an error.
type Requirement struct {
	middleware.Requirement
	// ChargeBefore charges the token before the tool runs, as
	// middleware.ChargeBefore does for HTTP routes: the tool runs only once
	// Skyfire confirmed the charge, and the charge stands whatever the tool
	// returns. Default (false): the tool runs first and only a final,
	// successful result is charged.
	ChargeBefore bool
}

// Config configures a [Gate].
type Config struct {
	// Tools maps tool names to their requirements for [Gate.Middleware].
	// Tools not listed are free and left alone. The middleware cannot see
	// which tools a server has: a ChargeBefore tool listed here but not
	// registered would be charged before the SDK answers "unknown tool", so
	// list only registered tools (or use [Gate.AddTool], which cannot
	// differ).
	Tools map[string]Requirement
	// Argument is the tool argument that carries the token. Default:
	// DefaultArgument ("skyfire-pay-id"). A gated tool must not have an
	// argument of its own with this name: the gate removes it.
	Argument string
}

// Gate sells the tools of MCP servers built with the official MCP Go SDK.
// It runs every gated tool call through the transport-neutral gate of a
// [middleware.Middleware] (verification, requirement, price, charge,
// refusal texts), so an MCP tool and an HTTP route with the same
// requirement accept and refuse the same tokens.
//
// A Gate is safe for concurrent use. Build it with [New].
type Gate struct {
	m         *middleware.Middleware
	arg       string
	header    string // the token header configured in m
	signupURL string
	places    [4]string        // where a token may be, for refusal texts
	tools     map[string]*tool // Config.Tools; read-only after New
}

// tool is a compiled tool requirement.
type tool struct {
	name  string
	route *middleware.Route
	info  ToolInfo
	// desc is the description of the argument's schema property.
	desc string
}

// New returns a Gate that decides with m. It reports an invalid
// configuration: a tool requirement the Middleware refuses (see
// [middleware.Middleware.Route]), a price from [middleware.PriceFunc]
// (which needs an HTTP request; use [middleware.ContextPrice]),
// ChargeBefore set together with Timing middleware.ChargeAfter, or an
// invalid argument name.
func New(m *middleware.Middleware, cfg Config) (*Gate, error) {
	if m == nil {
		return nil, errors.New("kyapaymcp: nil *middleware.Middleware")
	}
	g := &Gate{m: m, arg: cfg.Argument}
	if g.arg == "" {
		g.arg = DefaultArgument
	}
	if !validName(g.arg) {
		return nil, fmt.Errorf("kyapaymcp: invalid argument name %q (use letters, digits, '_', '-' and '.')", g.arg)
	}
	// The Middleware keeps its header name and signup URL to itself; every
	// refusal it makes carries them.
	ref, _ := m.Describe(kyapay.ErrTokenMissing)
	g.header, g.signupURL = ref.Header, ref.SignupURL
	if g.header == "" {
		g.header = kyapay.HeaderName
	}
	if g.signupURL == "" {
		g.signupURL = middleware.DefaultSignupURL
	}
	g.initPlaces()
	g.tools = make(map[string]*tool, len(cfg.Tools))
	for _, name := range slices.Sorted(maps.Keys(cfg.Tools)) { // the same first error every time
		t, err := g.compile(name, cfg.Tools[name])
		if err != nil {
			return nil, err
		}
		g.tools[name] = t
	}
	return g, nil
}

// Argument returns the name of the tool argument that carries the token.
func (g *Gate) Argument() string { return g.arg }

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
// successful. On tools/list it adds the argument and a [ToolInfo] to copies
// of the listed tools. Every other method (initialize, ping, server/discover,
// notifications, resources, prompts) and every unlisted tool pass through
// untouched.
func (g *Gate) Middleware() mcp.Middleware {
	return g.middleware(func(name string) *tool { return g.tools[name] })
}

// compile validates one tool requirement.
func (g *Gate) compile(name string, req Requirement) (*tool, error) {
	if name == "" {
		return nil, errors.New("kyapaymcp: empty tool name")
	}
	if req.ChargeBefore && req.Timing == middleware.ChargeAfter {
		return nil, fmt.Errorf("kyapaymcp: tool %q: ChargeBefore set with Timing middleware.ChargeAfter", name)
	}
	if needsRequest(req.Price) {
		return nil, fmt.Errorf("kyapaymcp: tool %q: middleware.PriceFunc needs an HTTP request, which a tool call does not have; use middleware.ContextPrice", name)
	}
	r := req.Requirement
	r.Timing = middleware.ChargeAfter
	if req.ChargeBefore {
		r.Timing = middleware.ChargeBefore
	}
	if r.Name == "" {
		r.Name = name
	}
	rt, err := g.m.Route(r)
	if err != nil {
		return nil, fmt.Errorf("kyapaymcp: tool %q: %w", name, err)
	}
	t := &tool{name: name, route: rt, info: g.toolInfo(rt)}
	t.desc = g.describe(&t.info)
	return t, nil
}

// needsRequest reports whether p was built by middleware.PriceFunc, whose
// function reads an *http.Request. Price keeps its kind unexported, so the
// function field is inspected; TestPriceFuncRefused fails if that field is
// ever renamed.
func needsRequest(p middleware.Price) bool {
	f := reflect.ValueOf(p).FieldByName("fn")
	return f.IsValid() && f.Kind() == reflect.Func && !f.IsNil()
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
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
func (g *Gate) middleware(lookup func(string) *tool) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "tools/call":
				call, ok := req.(*mcp.CallToolRequest)
				if !ok || call == nil || call.Params == nil {
					break
				}
				t := lookup(call.Params.Name)
				if t == nil || g.gated(ctx, t.name) {
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
func (g *Gate) serveCall(ctx context.Context, t *tool, call *mcp.CallToolRequest, next mcp.MethodHandler) (mcp.Result, error) {
	found, err := g.takeToken(call)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "kyapaymcp: " + err.Error()}
	}
	params := *call.Params
	params.Arguments, params.Meta = found.args, found.meta
	stripped := *call
	stripped.Params = &params
	ctx = context.WithValue(ctx, callKey{}, &gatedCall{gate: g, tool: t.name, req: &stripped})

	grant, err := g.m.Authorize(ctx, t.route, middleware.Input{Token: found.token, TokenErr: found.err})
	if err != nil {
		return g.refusalResult(err), nil
	}
	res, err := next(grant.Context(), "tools/call", &stripped)
	if grant.Pending() {
		r, _ := res.(*mcp.CallToolResult)
		if err != nil || !final(r) {
			grant.Abandon()
			return res, err
		}
		receipt, cerr := grant.Commit(ctx)
		if cerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err() // the caller is gone; nothing charged
			}
			return g.refusalResult(cerr), nil
		}
		return withReceipt(r, receipt), nil
	}
	if receipt, ok := grant.Receipt(); ok && err == nil {
		if r, ok := res.(*mcp.CallToolResult); ok && r != nil {
			return withReceipt(r, receipt), nil
		}
	}
	return res, err
}

// final reports whether r is a final, successful tool result: the only
// kind a charge-after tool is charged for. An error result and a result
// that asks the client for more input (multi round-trip) are not.
func final(r *mcp.CallToolResult) bool {
	return r != nil && !r.IsError && !r.NeedsInput() && r.InputRequests == nil
}

// Receipt is the [ReceiptMetaKey] entry of a charged call's result _meta.
type Receipt struct {
	// AmountCharged is what Skyfire charged, in USD.
	AmountCharged kyapay.Amount `json:"amountCharged"`
	// Currency is "USD".
	Currency string `json:"currency"`
	// RemainingBalance is the token's balance after the charge, when
	// Skyfire reported it.
	RemainingBalance *kyapay.Amount `json:"remainingBalance,omitempty"`
	// TransactionID is Skyfire's transaction ID, when it sent one.
	TransactionID string `json:"transactionId,omitempty"`
}

// withReceipt returns a copy of r carrying the receipt in its _meta. The
// tool's own result is not modified: a handler may return a shared value.
func withReceipt(r *mcp.CallToolResult, rc charge.Receipt) *mcp.CallToolResult {
	out := *r
	out.Meta = make(mcp.Meta, len(r.Meta)+1)
	maps.Copy(out.Meta, r.Meta)
	// The receipt and its balance share one allocation.
	box := &struct {
		info    Receipt
		balance kyapay.Amount
	}{info: Receipt{AmountCharged: rc.AmountCharged, Currency: "USD", TransactionID: rc.TransactionID}, balance: rc.RemainingBalance}
	if rc.HasRemainingBalance {
		box.info.RemainingBalance = &box.balance
	}
	out.Meta[ReceiptMetaKey] = &box.info
	return &out
}

// RefusalContent is the structuredContent of a refused call: the
// machine-readable refusal of the HTTP front end, with Argument set to the
// tool argument, plus the _meta key that also carries the token.
type RefusalContent struct {
	middleware.RefusalDetail
	// MetaKey is the request _meta key that may carry the token (MetaKey).
	MetaKey string `json:"metaKey"`
}

// refusalResult renders a refusal from the gate as a tool error result:
// the caller-facing text in content, and a [RefusalContent] in
// structuredContent.
func (g *Gate) refusalResult(err error) *mcp.CallToolResult {
	ref, d := g.m.Describe(err)
	d.Argument = g.arg
	if tokenAdvice(ref.Code()) {
		d.Message += ` Pass the token in the "` + g.arg + `" argument of this tool.`
	}
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: d.Message}},
		StructuredContent: RefusalContent{RefusalDetail: d, MetaKey: MetaKey},
	}
}

// tokenAdvice reports whether a refusal with this code is cured by sending
// a (new) token, so its text says where to put it. Charge outcomes that
// must not be paid again and server-side failures are not.
func tokenAdvice(code kyapay.Code) bool {
	switch code {
	case kyapay.CodeChargeUnknown, kyapay.CodeChargeMismatch, kyapay.CodeChargeUnavailable,
		kyapay.CodeKeysUnavailable, kyapay.CodeInternal:
		return false
	}
	return true
}

// errNotGated refuses a call that reached a tool registered with AddTool
// without passing its gate.
var errNotGated = kyapay.NewError(kyapay.CodeInternal, "", errors.New("kyapaymcp: gated tool called without its gate"))

// typeList is the accepted types as Skyfire's API names them.
func typeList(t kyapay.TokenTypes) []string {
	var out []string
	for _, one := range []kyapay.TokenType{kyapay.TypeKYA, kyapay.TypePay, kyapay.TypeKYAPay} {
		if t&one != 0 {
			out = append(out, one.String())
		}
	}
	return out
}

// orList joins words for a sentence: "kya, pay or kya-pay".
func orList(l []string) string {
	if len(l) <= 1 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}
