package kyapaymcp

import (
	"maps"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// decorateList returns res with every tool lookup knows replaced by a
// decorated copy. The SDK hands out its stored *mcp.Tool values, which must
// never be modified, so the tools, their schemas and _meta are copied, and
// so are the result and its slice.
func (g *Gate) decorateList(res *mcp.ListToolsResult, lookup func(string) *mcpgate.Tool) *mcp.ListToolsResult {
	var out *mcp.ListToolsResult
	for i, t := range res.Tools {
		if t == nil {
			continue
		}
		gt := lookup(t.Name)
		if gt == nil {
			continue
		}
		if out == nil {
			cp := *res
			cp.Tools = slices.Clone(res.Tools)
			out = &cp
		}
		out.Tools[i] = g.decorateTool(t, gt)
	}
	if out == nil {
		return res
	}
	return out
}

// decorateTool returns a copy of t advertising gt: the token argument in
// its input schema, a line in its description and a *ToolInfo in its
// _meta.
func (g *Gate) decorateTool(t *mcp.Tool, gt *mcpgate.Tool) *mcp.Tool {
	cp := *t
	cp.Meta = gt.DecorateMeta(t.Meta)
	cp.InputSchema = g.withArgument(t.InputSchema, gt)
	cp.Description = gt.DecorateDescription(t.Description)
	return &cp
}

// withArgument returns a copy of the input schema s with the token
// argument of gt as a string property. s itself and everything it shares
// are left unchanged. A *jsonschema.Schema stays one; a schema of any other
// type (json.RawMessage, a map) is returned as JSON, and one that does not
// encode as a JSON object is returned as it is.
func (g *Gate) withArgument(s any, gt *mcpgate.Tool) any {
	if v, ok := s.(*jsonschema.Schema); ok && v != nil {
		name := g.core.Argument()
		cp := *v
		cp.Properties = make(map[string]*jsonschema.Schema, len(v.Properties)+1)
		maps.Copy(cp.Properties, v.Properties)
		cp.Properties[name] = &jsonschema.Schema{Type: "string", Description: gt.ArgumentDescription()}
		if v.PropertyOrder != nil && !slices.Contains(v.PropertyOrder, name) {
			cp.PropertyOrder = append(slices.Clip(v.PropertyOrder), name)
		}
		return &cp
	}
	raw, err := gt.DecorateSchema(s)
	if err != nil {
		return s
	}
	return raw
}
