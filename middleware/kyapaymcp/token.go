package kyapaymcp

import (
	"encoding/json"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
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
// request that carried it, the request's _meta (MetaKey, then the header
// name) and the tool argument, and removes it from the arguments and the
// _meta. Every occurrence is removed, whatever the outcome. The returned
// error is for arguments that are not a JSON object.
func (g *Gate) takeToken(call *mcp.CallToolRequest) (found, error) {
	f := found{meta: call.Params.Meta}
	var (
		where []string // where each token was found, for the ambiguity text
		toks  []string
	)
	add := func(place, tok string) {
		if tok = strings.TrimSpace(tok); tok != "" {
			where, toks = append(where, place), append(toks, tok)
		}
	}
	malformed := func(place string) {
		if f.err == nil {
			f.err = kyapay.NewError(kyapay.CodeTokenMalformed, "the token in "+place+" is not a string", nil)
		}
	}

	if extra := call.GetExtra(); extra != nil && extra.Header != nil {
		switch vals := extra.Header.Values(g.header); len(vals) {
		case 0:
		case 1:
			add("the "+g.header+" header", vals[0])
		default:
			f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous, "more than one "+g.header+" header", nil)
		}
	}

	if m := call.Params.Meta; m != nil {
		keys := [2]string{MetaKey, g.header}
		stripped := false
		for _, k := range keys {
			v, ok := m[k]
			if !ok {
				continue
			}
			if !stripped {
				f.meta = make(mcp.Meta, len(m))
				for mk, mv := range m {
					if mk != keys[0] && mk != keys[1] {
						f.meta[mk] = mv
					}
				}
				stripped = true
			}
			place := `_meta["` + k + `"]`
			switch v := v.(type) {
			case nil:
			case string:
				add(place, v)
			default:
				malformed(place)
			}
		}
	}

	args, vals, err := splitArgument(call.Params.Arguments, g.arg)
	if err != nil {
		return found{}, err
	}
	f.args = args
	place := "the " + g.arg + " argument"
	for _, v := range vals {
		if v.notString {
			malformed(place)
			continue
		}
		add(place, v.token)
	}

	if f.err != nil {
		return f, nil
	}
	for i := 1; i < len(toks); i++ {
		if toks[i] != toks[0] {
			f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous,
				"the request carries two different tokens, in "+where[0]+" and in "+where[i], nil)
			return f, nil
		}
	}
	if len(toks) > 0 {
		f.token = toks[0]
	}
	return f, nil
}
