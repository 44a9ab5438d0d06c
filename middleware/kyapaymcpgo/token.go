package kyapaymcpgo

import (
	"context"
	"encoding/json"
	"maps"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
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

// beforeCall is the tools/call hook: it runs before mcp-go validates the
// arguments, takes the token out of them, and leaves what it found for the
// middleware.
func (g *Gate) beforeCall(_ context.Context, _ any, req *mcp.CallToolRequest) {
	if req == nil {
		return
	}
	if _, ok := g.tools[req.Params.Name]; !ok || stateOf(req.Params.Meta) != nil {
		// Free, or already taken care of (the gate was installed twice).
		return
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

// resolve finds the token in the call's header, _meta and arguments, and
// removes the argument from req. Two different tokens are token_ambiguous;
// a token that is not a string is token_malformed.
func (g *Gate) resolve(req *mcp.CallToolRequest) (string, error) {
	var found []string
	var bad error
	for _, v := range req.Header.Values(g.header) {
		if v != "" {
			found = append(found, v)
		}
	}
	if req.Params.Meta != nil {
		if v, ok := req.Params.Meta.AdditionalFields[g.metaKey]; ok {
			switch s := v.(type) {
			case string:
				if s != "" {
					found = append(found, s)
				}
			case nil:
			default:
				bad = notAString("_meta \"" + g.metaKey + "\"")
			}
		}
	}
	if v, ok := stripArgument(&req.Params, g.arg); ok {
		switch s := v.(type) {
		case string:
			if s != "" {
				found = append(found, s)
			}
		case nil:
		default:
			bad = notAString("argument \"" + g.arg + "\"")
		}
	}
	for _, s := range found[min(1, len(found)):] {
		if s != found[0] {
			return "", kyapay.ErrTokenAmbiguous
		}
	}
	if bad != nil {
		return "", bad
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

func notAString(where string) error {
	return kyapay.NewError(kyapay.CodeTokenMalformed, "the token in the "+where+" is not a string", nil)
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

// cleanMeta returns meta without the token and the hook's state, copying
// it if it has either; the caller's meta is never changed.
func (g *Gate) cleanMeta(meta *mcp.Meta) *mcp.Meta {
	if meta == nil {
		return nil
	}
	_, hasTok := meta.AdditionalFields[g.metaKey]
	_, hasState := meta.AdditionalFields[stateKey]
	if !hasTok && !hasState {
		return meta
	}
	c := &mcp.Meta{ProgressToken: meta.ProgressToken, AdditionalFields: maps.Clone(meta.AdditionalFields)}
	delete(c.AdditionalFields, g.metaKey)
	delete(c.AdditionalFields, stateKey)
	if len(c.AdditionalFields) == 0 {
		c.AdditionalFields = nil
	}
	if c.ProgressToken == nil && c.AdditionalFields == nil {
		return nil
	}
	return c
}
