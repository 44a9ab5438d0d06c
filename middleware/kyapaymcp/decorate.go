package kyapaymcp

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/middleware"
)

// ToolInfo is the [ToolMetaKey] entry of a gated tool's _meta in
// tools/list: what the tool demands, for programs (an LLM reads the
// argument's description instead).
type ToolInfo struct {
	// AcceptedTokenTypes lists the accepted token types: "kya", "pay",
	// "kya-pay".
	AcceptedTokenTypes []string `json:"acceptedTokenTypes"`
	// IdentityFields lists the hid fields the token must carry.
	IdentityFields []string `json:"identityFields,omitempty"`
	// Paid reports whether calls are charged.
	Paid bool `json:"paid"`
	// RequiredAmount and Currency state a fixed price per call; they are
	// absent when the price is set per call or by the Skyfire service.
	RequiredAmount string `json:"requiredAmount,omitempty"`
	Currency       string `json:"currency,omitempty"`
	// Charge is when a paid call is charged: "after" (only a successful
	// result) or "before" (before the tool runs).
	Charge string `json:"charge,omitempty"`
	// Argument, Header and MetaKey are where the token may travel: the
	// tool argument, the HTTP header, the request _meta key.
	Argument string `json:"argument"`
	Header   string `json:"header"`
	MetaKey  string `json:"metaKey"`
	// CreateTokenURL documents how to create a token.
	CreateTokenURL string `json:"createTokenUrl"`
}

func (g *Gate) toolInfo(rt *middleware.Route) ToolInfo {
	info := ToolInfo{
		AcceptedTokenTypes: typeList(rt.Accepted()),
		IdentityFields:     rt.IdentityFields(),
		Paid:               rt.Paid(),
		Argument:           g.arg,
		Header:             g.header,
		MetaKey:            MetaKey,
		CreateTokenURL:     middleware.DefaultCreateTokenURL,
	}
	if info.Paid {
		info.Charge = rt.Timing().String()
		if p, ok := rt.FixedPrice(); ok {
			info.RequiredAmount, info.Currency = p.String(), "USD"
		}
	}
	return info
}

// describe writes the description of the token argument: what to pass,
// what it costs, where to get one.
func (g *Gate) describe(info *ToolInfo) string {
	var b strings.Builder
	b.WriteString("Skyfire KYAPay token for this tool: a ")
	b.WriteString(orList(info.AcceptedTokenTypes))
	b.WriteString(` token, the JWT itself (it starts with "ey"), not its ID.`)
	switch {
	case info.Paid && info.RequiredAmount != "":
		b.WriteString(" Each call costs ")
		b.WriteString(info.RequiredAmount)
		b.WriteString(" USD")
	case info.Paid:
		b.WriteString(" Each call is charged a price set per call")
	default:
		b.WriteString(" Calls are not charged.")
	}
	if info.Paid {
		if info.Charge == "before" {
			b.WriteString(", charged before the tool runs.")
		} else {
			b.WriteString(", charged only when the call succeeds.")
		}
	}
	if len(info.IdentityFields) > 0 {
		b.WriteString(" The token must carry these identity fields: ")
		b.WriteString(strings.Join(info.IdentityFields, ", "))
		b.WriteByte('.')
	}
	b.WriteString(" Create one with Skyfire (")
	b.WriteString(info.CreateTokenURL)
	b.WriteString("; account at ")
	b.WriteString(g.signupURL)
	b.WriteString("). Clients may send it in the ")
	b.WriteString(g.header)
	b.WriteString(` HTTP header or in _meta["`)
	b.WriteString(MetaKey)
	b.WriteString(`"] instead.`)
	return b.String()
}

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
// its input schema and a ToolInfo in its _meta.
func (g *Gate) decorateTool(t *mcp.Tool, gt *tool) *mcp.Tool {
	cp := *t
	cp.Meta = make(mcp.Meta, len(t.Meta)+1)
	maps.Copy(cp.Meta, t.Meta)
	cp.Meta[ToolMetaKey] = gt.info
	cp.InputSchema = withProperty(t.InputSchema, g.arg, gt.desc)
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
