package kyapaymcp

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// AddTool adds a gated tool with a raw handler to s, as s.AddTool(t, h)
// would, so that the tool cannot be served without its gate: it installs
// on s a receiving middleware that gates this tool (token from header,
// _meta or argument; removed before h sees the arguments; refusal, charge
// and receipt as described at [Gate.Middleware]), and it wraps h so that a
// call that did not pass that gate is refused with internal_error.
//
// Call it instead of s.AddTool, not after it. It reports an invalid
// requirement (see [New]), a tool named in [Config.Tools], a nil handler,
// or an input schema that already declares the token argument; it panics
// where s.AddTool panics (a missing or non-object input schema).
//
// Adding a tool again under the same name replaces its handler and its
// requirement. The middleware stays installed, so the name stays gated even
// if a free tool later takes it; [mcp.Server.RemoveTools] does not remove
// it either.
func (g *Gate) AddTool(s *mcp.Server, t *mcp.Tool, req Requirement, h mcp.ToolHandler) error {
	if h == nil {
		return errors.New("kyapaymcp: nil tool handler")
	}
	var schema any
	if t != nil {
		schema = t.InputSchema
	}
	gt, err := g.prepare(s, t, req, schema)
	if err != nil {
		return err
	}
	s.AddTool(t, g.guard(t.Name, h))
	s.AddReceivingMiddleware(g.middleware(only(gt)))
	return nil
}

// AddTool adds a gated tool with a typed handler to s, as
// mcp.AddTool(s, t, h) would (the input schema inferred from In when t has
// none, input validated, output filled in), with the gate installed as
// [Gate.AddTool] does. The token argument is removed before the SDK
// validates the input, so a strict schema (additionalProperties false, the
// default for structs) still accepts calls that carry the token as an
// argument, and In never holds it.
//
// It reports the errors [Gate.AddTool] reports, and an In whose schema
// already has a property named like the token argument; it panics where
// mcp.AddTool panics.
func AddTool[In, Out any](s *mcp.Server, g *Gate, t *mcp.Tool, req Requirement, h mcp.ToolHandlerFor[In, Out]) error {
	if g == nil {
		return errors.New("kyapaymcp: nil *Gate")
	}
	if h == nil {
		return errors.New("kyapaymcp: nil tool handler")
	}
	var schema any
	if t != nil {
		schema = t.InputSchema
		if schema == nil {
			var err error
			if schema, err = inferSchema[In](); err != nil {
				return fmt.Errorf("kyapaymcp: tool %q: input schema: %w", t.Name, err)
			}
		}
	}
	gt, err := g.prepare(s, t, req, schema)
	if err != nil {
		return err
	}
	mcp.AddTool(s, t, guardFor(g, t.Name, h))
	s.AddReceivingMiddleware(g.middleware(only(gt)))
	return nil
}

// MustAddTool is [Gate.AddTool] for set-up code: it panics where AddTool
// returns an error.
func (g *Gate) MustAddTool(s *mcp.Server, t *mcp.Tool, req Requirement, h mcp.ToolHandler) {
	if err := g.AddTool(s, t, req, h); err != nil {
		panic(err)
	}
}

// MustAddTool is [AddTool] for set-up code: it panics where AddTool
// returns an error.
func MustAddTool[In, Out any](s *mcp.Server, g *Gate, t *mcp.Tool, req Requirement, h mcp.ToolHandlerFor[In, Out]) {
	if err := AddTool(s, g, t, req, h); err != nil {
		panic(err)
	}
}

// guard refuses, with internal_error, a call of the tool name that did not
// pass this gate, and runs h for every other.
func (g *Gate) guard(name string, h mcp.ToolHandler) mcp.ToolHandler {
	return func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if !g.gated(ctx, name) {
			return g.refusalResult(errNotGated), nil
		}
		return h(ctx, r)
	}
}

// guardFor is guard for typed handlers. The refusal is an error, which the
// SDK turns into an error result: a typed handler's result would have its
// structuredContent replaced by the zero output.
func guardFor[In, Out any](g *Gate, name string, h mcp.ToolHandlerFor[In, Out]) mcp.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, r *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		if !g.gated(ctx, name) {
			var zero Out
			return nil, zero, errNotGated
		}
		return h(ctx, r, in)
	}
}

// inferSchema is the input schema mcp.AddTool infers for In, or nil for
// In any (any object).
func inferSchema[In any]() (*jsonschema.Schema, error) {
	rt := reflect.TypeFor[In]()
	if rt == reflect.TypeFor[any]() {
		return nil, nil
	}
	if rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	return jsonschema.ForType(rt, &jsonschema.ForOptions{})
}

// prepare checks a per-tool registration and compiles its requirement.
func (g *Gate) prepare(s *mcp.Server, t *mcp.Tool, req Requirement, schema any) (*mcpgate.Tool, error) {
	switch {
	case g == nil:
		return nil, errors.New("kyapaymcp: nil *Gate")
	case s == nil:
		return nil, errors.New("kyapaymcp: nil *mcp.Server")
	case t == nil:
		return nil, errors.New("kyapaymcp: nil *mcp.Tool")
	}
	return g.core.Compile(t.Name, req, schema)
}

// only is a lookup that knows the tool t alone.
func only(t *mcpgate.Tool) func(string) *mcpgate.Tool {
	return func(name string) *mcpgate.Tool {
		if name == t.Name() {
			return t
		}
		return nil
	}
}
