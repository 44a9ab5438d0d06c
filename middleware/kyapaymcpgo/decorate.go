package kyapaymcpgo

import (
	"context"
	"maps"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// afterList is the tools/list hook: it shows every gated tool with the
// token argument and its price. It decorates copies; the tools mcp-go
// stores are never changed.
func (g *Gate) afterList(_ context.Context, _ any, _ *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
	if res == nil {
		return
	}
	var out []mcp.Tool
	for i, tl := range res.Tools {
		t := g.core.Tool(tl.Name)
		if t == nil || g.wrapped(tl) {
			continue
		}
		d, err := g.decorate(tl, t)
		if err != nil {
			// A raw schema that is not an object cannot take the argument;
			// the call is still gated, and the header and _meta still work.
			continue
		}
		if out == nil {
			out = slices.Clone(res.Tools)
		}
		out[i] = d
	}
	if out != nil {
		res.Tools = out
	}
}

// decorate returns tl with the token argument in its input schema (in
// place of any property of that name), a line in its description and the
// *ToolInfo in its _meta. tl's maps and slices are copied, not changed.
func (g *Gate) decorate(tl mcp.Tool, t *mcpgate.Tool) (mcp.Tool, error) {
	if g.wrapped(tl) {
		return tl, nil
	}
	if len(tl.RawInputSchema) > 0 {
		raw, err := t.DecorateSchema(tl.RawInputSchema)
		if err != nil {
			return tl, err
		}
		tl.RawInputSchema = raw
	} else {
		arg := g.core.Argument()
		_, exists := tl.InputSchema.Properties[arg]
		props := make(map[string]any, len(tl.InputSchema.Properties)+1)
		maps.Copy(props, tl.InputSchema.Properties)
		props[arg] = map[string]any{"type": "string", "description": t.ArgumentDescription()}
		tl.InputSchema.Properties = props
		if tl.InputSchema.PropertyOrder != nil && !exists {
			tl.InputSchema.PropertyOrder = append(slices.Clip(tl.InputSchema.PropertyOrder), arg)
		}
		if tl.InputSchema.Type == "" {
			tl.InputSchema.Type = "object"
		}
	}
	tl.Description = t.DecorateDescription(tl.Description)
	tl.Meta = withFields(tl.Meta, t.DecorateMeta)
	return tl, nil
}

// withFields returns a new *mcp.Meta with meta's progress token and the
// additional fields add returns for meta's. meta is not changed.
func withFields(meta *mcp.Meta, add func(map[string]any) map[string]any) *mcp.Meta {
	out := &mcp.Meta{}
	var fields map[string]any
	if meta != nil {
		out.ProgressToken, fields = meta.ProgressToken, meta.AdditionalFields
	}
	out.AdditionalFields = add(fields)
	return out
}
