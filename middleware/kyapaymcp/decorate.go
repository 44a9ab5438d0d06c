package kyapaymcp

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// decorateList returns res with every tool lookup knows replaced by a
// decorated copy. The SDK hands out its stored *mcp.Tool values, which must
// never be modified, so the tools, their schemas and _meta are copied, and
// so are the result and its slice.
func (g *Gate) decorateList(res *mcp.ListToolsResult, lookup func(string) *tool) *mcp.ListToolsResult {
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
func (g *Gate) decorateTool(t *mcp.Tool, gt *tool) *mcp.Tool {
	cp := *t
	cp.Meta = make(mcp.Meta, len(t.Meta)+1)
	maps.Copy(cp.Meta, t.Meta)
	cp.Meta[ToolMetaKey] = gt.info
	cp.InputSchema = withProperty(t.InputSchema, g.arg, gt.argDesc)
	if cp.Description == "" {
		cp.Description = gt.descLine
	} else {
		cp.Description += "\n\n" + gt.descLine
	}
	return &cp
}

// withProperty returns a copy of the input schema s with a string property
// name described by desc. s itself and everything it shares are left
// unchanged. A schema of an unknown shape that does not encode as a JSON
// object is returned as it is.
func withProperty(s any, name, desc string) any {
	switch v := s.(type) {
	case *jsonschema.Schema:
		if v == nil {
			return s
		}
		cp := *v
		cp.Properties = make(map[string]*jsonschema.Schema, len(v.Properties)+1)
		maps.Copy(cp.Properties, v.Properties)
		cp.Properties[name] = &jsonschema.Schema{Type: "string", Description: desc}
		if v.PropertyOrder != nil && !slices.Contains(v.PropertyOrder, name) {
			cp.PropertyOrder = append(slices.Clip(v.PropertyOrder), name)
		}
		return &cp
	case map[string]any:
		if v == nil {
			return s
		}
		return mapWithProperty(v, name, desc)
	}
	// json.RawMessage or any other type: through its JSON, with numbers
	// kept as written.
	var raw []byte
	switch v := s.(type) {
	case json.RawMessage:
		raw = v
	default:
		var err error
		if raw, err = json.Marshal(s); err != nil {
			return s
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return s
	}
	return mapWithProperty(m, name, desc)
}

func mapWithProperty(m map[string]any, name, desc string) map[string]any {
	cp := maps.Clone(m)
	props := make(map[string]any)
	if old, ok := m["properties"].(map[string]any); ok {
		maps.Copy(props, old)
	}
	props[name] = map[string]any{"type": "string", "description": desc}
	cp["properties"] = props
	return cp
}

// hasProperty reports whether the input schema s declares the property
// name.
func hasProperty(s any, name string) bool {
	switch v := s.(type) {
	case nil:
		return false
	case *jsonschema.Schema:
		if v == nil {
			return false
		}
		_, ok := v.Properties[name]
		return ok
	case map[string]any:
		props, _ := v["properties"].(map[string]any)
		_, ok := props[name]
		return ok
	}
	var raw []byte
	switch v := s.(type) {
	case json.RawMessage:
		raw = v
	default:
		var err error
		if raw, err = json.Marshal(s); err != nil {
			return false
		}
	}
	var probe struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return false
	}
	_, ok := probe.Properties[name]
	return ok
}
