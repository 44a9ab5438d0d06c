package kyapaymcpgo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
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
		t, ok := g.tools[tl.Name]
		if !ok || g.wrapped(tl) {
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
func (g *Gate) decorate(tl mcp.Tool, t *tool) (mcp.Tool, error) {
	if g.wrapped(tl) {
		return tl, nil
	}
	prop := map[string]any{"type": "string", "description": t.argDesc}
	if len(tl.RawInputSchema) > 0 {
		raw, err := addRawProperty(tl.RawInputSchema, g.arg, prop)
		if err != nil {
			return tl, fmt.Errorf("%s: tool %q: %w", pkgName, tl.Name, err)
		}
		tl.RawInputSchema = raw
	} else {
		_, exists := tl.InputSchema.Properties[g.arg]
		props := make(map[string]any, len(tl.InputSchema.Properties)+1)
		maps.Copy(props, tl.InputSchema.Properties)
		props[g.arg] = prop
		tl.InputSchema.Properties = props
		if tl.InputSchema.PropertyOrder != nil && !exists {
			tl.InputSchema.PropertyOrder = append(slices.Clip(tl.InputSchema.PropertyOrder), g.arg)
		}
		if tl.InputSchema.Type == "" {
			tl.InputSchema.Type = "object"
		}
	}
	if tl.Description == "" {
		tl.Description = t.descLine
	} else {
		tl.Description += "\n\n" + t.descLine
	}
	meta := &mcp.Meta{}
	if tl.Meta != nil {
		meta.ProgressToken = tl.Meta.ProgressToken
		meta.AdditionalFields = maps.Clone(tl.Meta.AdditionalFields)
	}
	if meta.AdditionalFields == nil {
		meta.AdditionalFields = make(map[string]any, 1)
	}
	meta.AdditionalFields[ToolMetaKey] = t.info
	tl.Meta = meta
	return tl, nil
}

// addRawProperty returns the JSON Schema object raw with the property name
// set in its properties, in place of any property of that name. The other
// members keep their bytes.
func addRawProperty(raw json.RawMessage, name string, prop any) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errors.New("RawInputSchema is not a JSON object")
	}
	props := map[string]json.RawMessage{}
	if p, ok := obj["properties"]; ok && string(p) != "null" {
		if err := json.Unmarshal(p, &props); err != nil || props == nil {
			return nil, errors.New(`RawInputSchema "properties" is not a JSON object`)
		}
	}
	b, err := json.Marshal(prop)
	if err != nil {
		return nil, err
	}
	props[name] = b
	if obj["properties"], err = json.Marshal(props); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// hasArgument reports whether tl's input schema declares the property
// name. A RawInputSchema that is not a JSON object is an error.
func hasArgument(tl mcp.Tool, name string) (bool, error) {
	if len(tl.RawInputSchema) == 0 {
		_, ok := tl.InputSchema.Properties[name]
		return ok, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(tl.RawInputSchema, &obj); err != nil || obj == nil {
		return false, errors.New("RawInputSchema is not a JSON object")
	}
	p, ok := obj["properties"]
	if !ok || string(p) == "null" {
		return false, nil
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(p, &props); err != nil || props == nil {
		return false, errors.New(`RawInputSchema "properties" is not a JSON object`)
	}
	_, ok = props[name]
	return ok, nil
}
