package kyapaymcpgo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Names of the places a token and the gate's metadata travel in.
const (
	// DefaultArgument is the tool argument that carries the token unless
	// [Config.Argument] names another.
	DefaultArgument = kyapay.HeaderName
	// DefaultMetaKey is the key in a tools/call request's _meta that
	// carries the token unless [Config.MetaKey] names another.
	DefaultMetaKey = "xyz.skyfire/pay-id"
	// ToolMetaKey is the key of the machine-readable entry that tools/list
	// adds to the _meta of every paid or identity tool: accepted token
	// types, price, and where to put the token.
	ToolMetaKey = "xyz.skyfire/kyapay"
	// ReceiptMetaKey is the key in a charged result's _meta that holds the
	// receipt: {"amountCharged": "0.01", "remainingBalance": "4.99"}.
	ReceiptMetaKey = "xyz.skyfire/receipt"
)

// Config configures a [Gate].
type Config struct {
	// Middleware verifies, prices and charges, as for HTTP routes: its
	// Verifier, Charger, Policy, Logger, OnCharged and Header apply to tool
	// calls too. Required.
	Middleware *middleware.Middleware
	// Tools maps tool names to what they demand; unlisted tools are free
	// and untouched. A requirement's Name defaults to the tool name.
	//
	// In MCP a priced tool charges after the tool succeeded, whatever
	// Requirement.Timing says (its zero value is ChargeBefore); list a tool
	// in ChargeBefore to charge before its handler runs. Prices are
	// [middleware.FixedPrice], [middleware.ContextPrice] (the context
	// carries the call: [RequestFromContext]) or [middleware.ServicePrice];
	// [middleware.PriceFunc] needs an HTTP request and is refused by [New].
	Tools map[string]middleware.Requirement
	// ChargeBefore lists priced tools that charge before their handler
	// runs, so the handler runs only once Skyfire confirmed the charge and
	// can read the receipt ([middleware.ReceiptFromContext]). Such a tool is
	// charged even if it then fails. Default: none; every priced tool
	// charges after a successful, final result.
	ChargeBefore []string
	// Argument is the tool argument that carries the token. Default:
	// DefaultArgument ("skyfire-pay-id").
	Argument string
	// MetaKey is the key in the request's _meta that carries the token.
	// Default: DefaultMetaKey ("xyz.skyfire/pay-id").
	MetaKey string
}

// Gate sells the tools of an mcp-go server per call: it takes the buyer's
// token from the call, verifies it, checks and charges it through a
// [middleware.Middleware], and tells agents in tools/list what each tool
// costs. Build it with [New]; it is safe for concurrent use.
type Gate struct {
	m       *middleware.Middleware
	tools   map[string]*tool
	arg     string
	metaKey string
	header  string
}

// tool is one gated tool, compiled.
type tool struct {
	name   string
	route  *middleware.Route
	before bool
	// advert is the tools/list _meta entry; propDesc and descLine are the
	// texts added to the input schema and the description.
	advert   *Advert
	propDesc string
	descLine string
}

// New validates cfg and returns a Gate. It reports an invalid requirement,
// a PriceFunc price, and a ChargeBefore entry that names no priced tool as
// errors.
func New(cfg Config) (*Gate, error) {
	if cfg.Middleware == nil {
		return nil, errors.New("kyapaymcpgo: Config.Middleware is required")
	}
	g := &Gate{
		m:       cfg.Middleware,
		tools:   make(map[string]*tool, len(cfg.Tools)),
		arg:     cfg.Argument,
		metaKey: cfg.MetaKey,
	}
	if g.arg == "" {
		g.arg = DefaultArgument
	}
	if g.metaKey == "" {
		g.metaKey = DefaultMetaKey
	}
	// The Middleware's header and signup URL, as its refusals state them.
	base, _ := g.m.Describe(kyapay.ErrTokenMissing)
	g.header = base.Header
	before := make(map[string]bool, len(cfg.ChargeBefore))
	for _, name := range cfg.ChargeBefore {
		before[name] = true
	}
	names := make([]string, 0, len(cfg.Tools))
	for name := range cfg.Tools {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		req := cfg.Tools[name]
		if name == "" {
			return nil, errors.New("kyapaymcpgo: Config.Tools has an empty tool name")
		}
		if priceKindOf(req.Price) == kindFunc {
			return nil, fmt.Errorf("kyapaymcpgo: tool %q: PriceFunc needs an HTTP request; use middleware.ContextPrice", name)
		}
		if req.Name == "" {
			req.Name = name
		}
		req.Timing = middleware.ChargeAfter
		if before[name] {
			req.Timing = middleware.ChargeBefore
		}
		rt, err := g.m.Route(req)
		if err != nil {
			return nil, fmt.Errorf("kyapaymcpgo: tool %q: %w", name, err)
		}
		if before[name] && !rt.Paid() {
			return nil, fmt.Errorf("kyapaymcpgo: ChargeBefore names tool %q, which has no price", name)
		}
		t := &tool{name: name, route: rt, before: before[name]}
		delete(before, name)
		kind := priceKindOf(req.Price)
		if _, fixed := rt.FixedPrice(); fixed {
			kind = kindFixed
		}
		g.describe(t, base, kind)
		g.tools[name] = t
	}
	for name := range before {
		return nil, fmt.Errorf("kyapaymcpgo: ChargeBefore names tool %q, which is not in Config.Tools", name)
	}
	return g, nil
}

// Install puts the gate on s: every call of a tool in [Config.Tools] is
// gated, its token argument is removed before mcp-go validates the
// arguments (WithInputSchemaValidation) and before any handler sees them,
// and tools/list shows each gated tool with the token argument and its
// price. Protocol methods (initialize, ping, tools/list, notifications) are
// never gated, and unlisted tools are untouched.
//
// Call Install once, before s serves, and after any server.WithHooks option
// (which would replace the hooks Install adds); it has the signature of a
// server.ServerOption, so it may also be passed last to
// server.NewMCPServer. Its tool middleware is added with s.Use, after the
// middlewares already there.
//
// mcp-go runs tools registered with AddTaskTool without any middleware, so
// Install cannot gate them: register gated task tools with
// [Gate.TaskTool]. A gated task tool registered any other way is hidden
// from tools/list and refused as unknown, so it is never served unpaid.
func (g *Gate) Install(s *server.MCPServer) {
	hooks := s.GetHooks()
	if hooks == nil {
		hooks = &server.Hooks{}
		server.WithHooks(hooks)(s)
	}
	hooks.AddBeforeCallTool(g.beforeCall)
	hooks.AddAfterListTools(g.afterList)
	server.WithToolFilter(g.filter(s))(s)
	s.Use(g.middleware)
}

// Tool returns tl, with the token argument and the price added to its
// input schema, description and _meta, and h gated: a tool registered with
// s.AddTools(g.Tool(tl, h)) is paid for even on a server where [Gate.Install]
// was forgotten. With Install too, the call is gated once.
//
// Tool panics if [Config.Tools] has no entry for tl.Name, or if
// tl.RawInputSchema is not a JSON object: both are programming errors, found
// at start-up.
func (g *Gate) Tool(tl mcp.Tool, h server.ToolHandlerFunc) server.ServerTool {
	t := g.mustTool(tl.Name)
	decorated, err := g.decorate(tl, t)
	if err != nil {
		panic(err)
	}
	return server.ServerTool{Tool: decorated, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if gatedIn(ctx, t.name) {
			return h(ctx, req)
		}
		return serve(g, ctx, t, req, h, callOps)
	}}
}

// TaskTool is [Gate.Tool] for task tools, which mcp-go runs without any
// middleware: register them with s.AddTaskTools(g.TaskTool(tl, h)). The
// call is gated when the task runs; a refusal, or a charge that fails,
// becomes the task's result (isError), which the agent reads with
// tasks/result. A priced task tool charges once its handler returned a
// result that is not an error, and the receipt is in that result's _meta.
//
// TaskTool panics like Tool.
func (g *Gate) TaskTool(tl mcp.Tool, h server.TaskToolHandlerFunc) server.ServerTaskTool {
	t := g.mustTool(tl.Name)
	decorated, err := g.decorate(tl, t)
	if err != nil {
		panic(err)
	}
	return server.ServerTaskTool{Tool: decorated, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
		if gatedIn(ctx, t.name) {
			return h(ctx, req)
		}
		return serve(g, ctx, t, req, h, taskOps)
	}}
}

func (g *Gate) mustTool(name string) *tool {
	t, ok := g.tools[name]
	if !ok {
		panic(fmt.Sprintf("kyapaymcpgo: tool %q is not in Config.Tools", name))
	}
	return t
}

// middleware is the tool middleware Install adds.
func (g *Gate) middleware(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		t, ok := g.tools[req.Params.Name]
		if !ok || gatedIn(ctx, t.name) {
			return next(ctx, req)
		}
		return serve(g, ctx, t, req, next, callOps)
	}
}

// filter hides gated task tools that would run ungated: mcp-go runs a tool
// registered with AddTaskTool without the middleware chain, so unless
// [Gate.TaskTool] wrapped it, it must not be listed or called. Such a tool
// is one that can run as a task, is not a regular tool of s, and carries no
// advert of this gate in its stored _meta.
func (g *Gate) filter(s *server.MCPServer) server.ToolFilterFunc {
	return func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
		var out []mcp.Tool
		for i, tl := range tools {
			keep := true
			if _, gated := g.tools[tl.Name]; gated && taskCapable(tl) && !g.wrapped(tl) && s.GetTool(tl.Name) == nil {
				keep = false
			}
			switch {
			case !keep && out == nil:
				out = append(make([]mcp.Tool, 0, len(tools)), tools[:i]...)
			case keep && out != nil:
				out = append(out, tl)
			}
		}
		if out == nil {
			return tools
		}
		return out
	}
}

func taskCapable(tl mcp.Tool) bool {
	return tl.Execution != nil && (tl.Execution.TaskSupport == mcp.TaskSupportOptional || tl.Execution.TaskSupport == mcp.TaskSupportRequired)
}

// wrapped reports whether tl was built by Tool or TaskTool of this gate.
func (g *Gate) wrapped(tl mcp.Tool) bool {
	if tl.Meta == nil {
		return false
	}
	a, ok := tl.Meta.AdditionalFields[ToolMetaKey].(*Advert)
	return ok && a.gate == g
}

// gatedKey marks a context whose call this gate already gates, so a
// per-tool wrapper under the installed middleware passes through.
type gatedKey struct{}

func gatedIn(ctx context.Context, name string) bool {
	n, ok := ctx.Value(gatedKey{}).(string)
	return ok && n == name
}

// requestKey carries the tool call for ContextPrice functions.
type requestKey struct{}

// RequestFromContext returns the tool call being gated, as the tool's
// handler will see it (without the token argument), and whether there is
// one. It is there for [middleware.ContextPrice] functions, which price a
// call from its arguments.
func RequestFromContext(ctx context.Context) (mcp.CallToolRequest, bool) {
	r, ok := ctx.Value(requestKey{}).(*mcp.CallToolRequest)
	if !ok || r == nil {
		return mcp.CallToolRequest{}, false
	}
	return *r, true
}

// priceKind tells the Price constructors apart; middleware.Price keeps its
// kind unexported.
type priceKind uint8

const (
	kindFree priceKind = iota
	kindFixed
	kindFunc
	kindContext
	kindService
)

// priceKindOf tells a PriceFunc and a ContextPrice apart by their
// function; should middleware.Price change shape, a PriceFunc is still
// refused when a call is priced (internal_error), so this fails closed.
func priceKindOf(p middleware.Price) priceKind {
	if p.IsZero() {
		return kindFree
	}
	v := reflect.ValueOf(p)
	has := func(field string) bool {
		f := v.FieldByName(field)
		return f.IsValid() && f.Kind() == reflect.Func && !f.IsNil()
	}
	switch {
	case has("fn"):
		return kindFunc
	case has("ctxFn"):
		return kindContext
	}
	return kindService
}

// isOneOf reports whether code is in codes.
func isOneOf(code kyapay.Code, codes ...kyapay.Code) bool { return slices.Contains(codes, code) }
