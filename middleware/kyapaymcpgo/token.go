package kyapaymcpgo

import (
	"encoding/json"
	"maps"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
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
	f := g.core.NewFinder()
	f.Header(req.Header)
	if req.Params.Meta != nil {
		f.Meta(req.Params.Meta.AdditionalFields)
	}
	takeArgument(&req.Params, &f, g.core.Argument())
	return f.Result()
}

// takeArgument records the argument name of p in f and removes it from p's
// Arguments and RawArguments, without changing the maps and bytes p had.
// Arguments that are not a JSON object are left as they are: they hold no
// argument, and mcp-go refuses them.
func takeArgument(p *mcp.CallToolParams, f *mcpgate.Finder, name string) {
	switch args := p.Arguments.(type) {
	case map[string]any:
		if v, ok := args[name]; ok {
			f.Argument(v)
			c := maps.Clone(args)
			delete(c, name)
			p.Arguments = c
		}
	case json.RawMessage:
		if raw, err := f.Arguments(args); err == nil {
			p.Arguments = raw
		}
	}
	if len(p.RawArguments) > 0 {
		if raw, err := f.Arguments(p.RawArguments); err == nil {
			p.RawArguments = raw
		}
	}
}

// cleanMeta returns meta without the token entries and the hook's state,
// copying it if it has any; the caller's meta is never changed.
func (g *Gate) cleanMeta(meta *mcp.Meta) *mcp.Meta {
	if meta == nil {
		return nil
	}
	fields := g.core.MetaWithoutToken(meta.AdditionalFields, stateKey)
	if len(fields) == len(meta.AdditionalFields) {
		return meta // nothing removed
	}
	if meta.ProgressToken == nil && fields == nil {
		return nil
	}
	return &mcp.Meta{ProgressToken: meta.ProgressToken, AdditionalFields: fields}
}
