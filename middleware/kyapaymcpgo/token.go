package kyapaymcpgo

import (
	"encoding/json"
	"maps"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/middleware"
)

// stateKey is the _meta key under which the tools/call hook leaves a
// *callState for the middleware. The value is of an unexported type, which
// no JSON request can produce, so a client cannot forge it.
const stateKey = "xyz.skyfire/kyapay-call"

// callState is what the tools/call hook found, shared by every round of
// the call: mcp-go re-invokes the middleware chain with copies of the same
// request for a legacy client's multi-round-trip, and the copies share the
// *mcp.Meta that holds the state.
type callState struct {
	token string
	err   error
	// grant is the ChargeBefore grant of the call's first round, so later
	// rounds of the same call are not charged again.
	grant *middleware.Grant
}

// MarshalJSON keeps the state out of anything that logs the request.
func (*callState) MarshalJSON() ([]byte, error) { return []byte("{}"), nil }

// beforeCall is the tools/call hook of s: it runs before mcp-go validates
// the arguments, takes the token out of them, and leaves what it found for
// the middleware or the per-tool wrapper.
func (g *Gate) beforeCall(s *server.MCPServer, req *mcp.CallToolRequest) {
	if req == nil || stateOf(req.Params.Meta) != nil {
		// Already taken care of (the gate was installed twice).
		return
	}
	if g.lookup(s, req.Params.Name) == nil {
		return // free
	}
	tok, err := g.resolve(req)
	meta := g.cleanMeta(req.Params.Meta)
	if meta == nil {
		meta = &mcp.Meta{}
	}
	if meta.AdditionalFields == nil {
		meta.AdditionalFields = make(map[string]any, 1)
	}
	meta.AdditionalFields[stateKey] = &callState{token: tok, err: err}
	req.Params.Meta = meta
}

// stateOf returns the hook's state in meta, if the hook ran.
func stateOf(meta *mcp.Meta) *callState {
	if meta == nil {
		return nil
	}
	st, _ := meta.AdditionalFields[stateKey].(*callState)
	return st
}

// resolve finds the token of a call in, in order, the HTTP header of the
// request that carried it, the request's _meta (the gate's _meta key, then
// the header name) and the tool argument, and removes the argument from
// req (the _meta entries are removed by cleanMeta).
func (g *Gate) resolve(req *mcp.CallToolRequest) (string, error) {
	f := finder{c: &g.common}
	f.headerValues(req.Header.Values(g.header))
	if req.Params.Meta != nil {
		if v, ok := req.Params.Meta.AdditionalFields[g.metaKey]; ok {
			f.value(placeMeta, v)
		}
		if v, ok := req.Params.Meta.AdditionalFields[g.header]; ok {
			f.value(placeMetaHeader, v)
		}
	}
	if v, ok := stripArgument(&req.Params, g.arg); ok {
		f.value(placeArgument, v)
	}
	return f.result()
}

// stripArgument removes the argument name from p's Arguments and
// RawArguments, without changing the maps and bytes p had, and returns its
// value (a string for a well-formed call) and whether it was there.
func stripArgument(p *mcp.CallToolParams, name string) (any, bool) {
	var val any
	var found bool
	switch args := p.Arguments.(type) {
	case map[string]any:
		if v, ok := args[name]; ok {
			val, found = v, true
			c := maps.Clone(args)
			delete(c, name)
			p.Arguments = c
		}
	case json.RawMessage:
		if raw, v, ok := stripRaw(args, name); ok {
			val, found = v, true
			p.Arguments = raw
		}
	}
	if len(p.RawArguments) > 0 {
		if raw, v, ok := stripRaw(p.RawArguments, name); ok {
			if !found {
				val, found = v, true
			}
			p.RawArguments = raw
		}
	}
	return val, found
}

// stripRaw removes the member name from the JSON object raw and returns the
// new object and the member's value. Other members keep their bytes.
func stripRaw(raw json.RawMessage, name string) (json.RawMessage, any, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil, nil, false
	}
	member, ok := obj[name]
	if !ok {
		return nil, nil, false
	}
	var v any
	if json.Unmarshal(member, &v) != nil {
		return nil, nil, false
	}
	delete(obj, name)
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, false
	}
	return out, v, true
}

// cleanMeta returns meta without the token entries and the hook's state,
// copying it if it has any; the caller's meta is never changed.
func (g *Gate) cleanMeta(meta *mcp.Meta) *mcp.Meta {
	if meta == nil {
		return nil
	}
	_, hasTok := meta.AdditionalFields[g.metaKey]
	_, hasHeader := meta.AdditionalFields[g.header]
	_, hasState := meta.AdditionalFields[stateKey]
	if !hasTok && !hasHeader && !hasState {
		return meta
	}
	c := &mcp.Meta{ProgressToken: meta.ProgressToken, AdditionalFields: maps.Clone(meta.AdditionalFields)}
	delete(c.AdditionalFields, g.metaKey)
	delete(c.AdditionalFields, g.header)
	delete(c.AdditionalFields, stateKey)
	if len(c.AdditionalFields) == 0 {
		c.AdditionalFields = nil
	}
	if c.ProgressToken == nil && c.AdditionalFields == nil {
		return nil
	}
	return c
}
