package kyapaymcp

import (
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// found is what takeToken found in one call.
type found struct {
	// token is the token, "" when none was sent.
	token string
	// err, when not nil, refuses the call instead of token: a token that
	// is not a string, two header lines, or two different tokens.
	err error
	// args and meta are the call's arguments and _meta without the token.
	args json.RawMessage
	meta mcp.Meta
}

// takeToken finds the token of a call in, in order, the HTTP header of the
// request that carried it, the request's _meta (the gate's _meta key, then
// the header name) and the tool argument, and removes it from the
// arguments and the _meta. Every occurrence is removed, whatever the
// outcome. The returned error is for arguments that are not a JSON object.
func (g *Gate) takeToken(call *mcp.CallToolRequest) (found, error) {
	fd := g.core.NewFinder()
	if extra := call.GetExtra(); extra != nil {
		fd.Header(extra.Header)
	}
	fd.Meta(call.Params.Meta)
	args, err := fd.Arguments(call.Params.Arguments)
	if err != nil {
		return found{}, err
	}
	f := found{args: args, meta: g.core.MetaWithoutToken(call.Params.Meta)}
	f.token, f.err = fd.Result()
	return f, nil
}
