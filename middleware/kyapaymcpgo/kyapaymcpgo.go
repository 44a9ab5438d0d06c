package kyapaymcpgo

import (
	"context"
	"errors"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// Gate sells the tools of an mcp-go server per call: it takes the buyer's
// token from the call, verifies it, checks and charges it through a
// [middleware.Middleware], and tells agents in tools/list what each tool
// costs. Build it with [New]; it is safe for concurrent use.
type Gate struct {
	core *mcpgate.Gate
}

// Install puts the gate on s: every call of a tool in [Config.Tools] is
// gated, its token argument is removed before mcp-go validates the
// arguments (WithInputSchemaValidation) and before any handler sees them,
// and tools/list shows each gated tool with the token argument and its
// price. Protocol methods (initialize, ping, tools/list, notifications) are
// never gated, and unlisted tools are untouched. Tools of s registered with
// [Gate.Tool] of this gate keep their own requirement; Install takes their
// token out before validation too.
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
	hooks.AddBeforeCallTool(func(_ context.Context, _ any, req *mcp.CallToolRequest) { g.beforeCall(s, req) })
	hooks.AddAfterListTools(g.afterList)
	server.WithToolFilter(g.filter(s))(s)
	s.Use(g.middleware)
}

// Tool returns tl gated by req, for s.AddTools: the token argument, a
// line in the description and a *[ToolInfo] are added to tl's input
// schema, description and _meta, and h runs only for calls that req
// accepts. A tool registered this way is paid for even on a server where
// [Gate.Install] was forgotten; with Install too, the call is gated once,
// and Install then takes the token out before mcp-go validates the
// arguments.
//
// Tool reports an invalid requirement (see [New]), a nil handler, a tool
// named in [Config.Tools], an input schema that already declares the token
// argument, and a RawInputSchema that is not a JSON object. [Gate.MustTool]
// panics instead.
func (g *Gate) Tool(tl mcp.Tool, req Requirement, h server.ToolHandlerFunc) (server.ServerTool, error) {
	t, decorated, err := g.prepare(tl, req, h == nil)
	if err != nil {
		return server.ServerTool{}, err
	}
	return server.ServerTool{Tool: decorated, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if gatedIn(ctx, t) {
			return h(ctx, req)
		}
		return serve(g, ctx, t, req, h, callOps)
	}}, nil
}

// MustTool is [Gate.Tool] for set-up code: it panics where Tool returns an
// error.
func (g *Gate) MustTool(tl mcp.Tool, req Requirement, h server.ToolHandlerFunc) server.ServerTool {
	st, err := g.Tool(tl, req, h)
	if err != nil {
		panic(err)
	}
	return st
}

// TaskTool is [Gate.Tool] for task tools, which mcp-go runs without any
// middleware: register them with s.AddTaskTools. The call is gated when
// the task runs; a refusal, or a charge that fails, becomes the task's
// result (isError), which the agent reads with tasks/result. A priced task
// tool charges once its handler returned a result that is not an error,
// and the receipt is in that result's _meta.
//
// TaskTool reports the errors Tool reports; [Gate.MustTaskTool] panics
// instead.
func (g *Gate) TaskTool(tl mcp.Tool, req Requirement, h server.TaskToolHandlerFunc) (server.ServerTaskTool, error) {
	t, decorated, err := g.prepare(tl, req, h == nil)
	if err != nil {
		return server.ServerTaskTool{}, err
	}
	return server.ServerTaskTool{Tool: decorated, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
		if gatedIn(ctx, t) {
			return h(ctx, req)
		}
		return serve(g, ctx, t, req, h, taskOps)
	}}, nil
}

// MustTaskTool is [Gate.TaskTool] for set-up code: it panics where
// TaskTool returns an error.
func (g *Gate) MustTaskTool(tl mcp.Tool, req Requirement, h server.TaskToolHandlerFunc) server.ServerTaskTool {
	st, err := g.TaskTool(tl, req, h)
	if err != nil {
		panic(err)
	}
	return st
}

// prepare checks a per-tool registration, compiles its requirement and
// decorates the tool.
func (g *Gate) prepare(tl mcp.Tool, req Requirement, nilHandler bool) (*mcpgate.Tool, mcp.Tool, error) {
	switch {
	case g == nil:
		return nil, tl, errors.New("kyapaymcpgo: nil *Gate")
	case nilHandler:
		return nil, tl, errors.New("kyapaymcpgo: nil tool handler")
	}
	var schema any = tl.InputSchema
	if len(tl.RawInputSchema) > 0 {
		schema = tl.RawInputSchema
	}
	t, err := g.core.Compile(tl.Name, req, schema)
	if err != nil {
		return nil, tl, err
	}
	decorated, err := g.decorate(tl, t)
	if err != nil {
		return nil, tl, err
	}
	return t, decorated, nil
}

// lookup returns the gated tool name on s: one of Config.Tools, or one
// that s stores as registered by [Gate.Tool] of this gate.
func (g *Gate) lookup(s *server.MCPServer, name string) *mcpgate.Tool {
	if t := g.core.Tool(name); t != nil {
		return t
	}
	if st := s.GetTool(name); st != nil {
		return g.toolOf(st.Tool)
	}
	return nil
}

// middleware is the tool middleware Install adds.
func (g *Gate) middleware(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		t := g.core.Tool(req.Params.Name)
		if t == nil || gatedIn(ctx, t) {
			return next(ctx, req)
		}
		return serve(g, ctx, t, req, next, callOps)
	}
}

// filter hides gated task tools that would run ungated: mcp-go runs a tool
// registered with AddTaskTool without the middleware chain, so unless
// [Gate.TaskTool] wrapped it, it must not be listed or called. Such a tool
// is one that can run as a task, is not a regular tool of s, and carries no
// *ToolInfo of this gate in its stored _meta.
func (g *Gate) filter(s *server.MCPServer) server.ToolFilterFunc {
	return func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
		var out []mcp.Tool
		for i, tl := range tools {
			keep := true
			if g.core.Tool(tl.Name) != nil && taskCapable(tl) && !g.wrapped(tl) && s.GetTool(tl.Name) == nil {
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
func (g *Gate) wrapped(tl mcp.Tool) bool { return g.toolOf(tl) != nil }

// toolOf returns the gated tool whose *ToolInfo Tool or TaskTool of this
// gate put in tl's _meta, nil if there is none.
func (g *Gate) toolOf(tl mcp.Tool) *mcpgate.Tool {
	if tl.Meta == nil {
		return nil
	}
	return g.core.ToolFromMeta(tl.Meta.AdditionalFields)
}

// gatedKey marks a context whose call the gate already gates for a tool,
// so that the same gate does not gate it again (Install twice).
type gatedKey struct{}

func gatedIn(ctx context.Context, t *mcpgate.Tool) bool {
	v, _ := ctx.Value(gatedKey{}).(*mcpgate.Tool)
	return v == t
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
