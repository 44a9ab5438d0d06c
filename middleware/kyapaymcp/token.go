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
	fd := finder{c: &g.common}
	f := found{meta: call.Params.Meta}
	if extra := call.GetExtra(); extra != nil && extra.Header != nil {
		fd.headerValues(extra.Header.Values(g.header))
	}
	if m := call.Params.Meta; m != nil {
		v1, ok1 := m[g.metaKey]
		v2, ok2 := m[g.header]
		if ok1 || ok2 {
			f.meta = make(mcp.Meta, len(m))
			for k, v := range m {
				if k != g.metaKey && k != g.header {
					f.meta[k] = v
				}
			}
		}
		if ok1 {
			fd.value(placeMeta, v1)
		}
		if ok2 {
			fd.value(placeMetaHeader, v2)
		}
	}
	args, vals, err := splitArgument(call.Params.Arguments, g.arg)
	if err != nil {
		return found{}, err
	}
	f.args = args
	for _, v := range vals {
		if v.notString {
			fd.notString(placeArgument)
		} else {
			fd.add(placeArgument, v.token)
		}
	}
	f.token, f.err = fd.result()
	return f, nil
}
