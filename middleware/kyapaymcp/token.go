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
	var ambiguous, malformed string // where the first offending value was
	firstPlace := ""
	add := func(place, tok string) {
		tok = strings.TrimSpace(tok)
		switch {
		case tok == "":
		case f.token == "":
			f.token, firstPlace = tok, place
		case tok != f.token && ambiguous == "":
			ambiguous = place
		}
	}

	if extra := call.GetExtra(); extra != nil && extra.Header != nil {
		switch vals := extra.Header.Values(g.header); len(vals) {
		case 0:
		case 1:
			add(g.places[placeHeader], vals[0])
		default:
			f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous, "more than one "+g.header+" header", nil)
		}
	}

	if m := call.Params.Meta; m != nil {
		keys := [2]string{MetaKey, g.header}
		stripped := false
		for i, k := range keys {
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
			place := g.places[placeMeta+i]
			switch v := v.(type) {
			case nil:
			case string:
				add(place, v)
			default:
				if malformed == "" {
					malformed = place
				}
			}
		}
	}

	args, vals, err := splitArgument(call.Params.Arguments, g.arg)
	if err != nil {
		return found{}, err
	}
	f.args = args
	for _, v := range vals {
		if !v.notString {
			add(g.places[placeArgument], v.token)
		} else if malformed == "" {
			malformed = g.places[placeArgument]
		}
	}

	switch {
	case f.err != nil:
	case malformed != "":
		f.err = kyapay.NewError(kyapay.CodeTokenMalformed, "the token in "+malformed+" is not a string", nil)
	case ambiguous != "":
		f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous,
			"the request carries two different tokens, in "+firstPlace+" and in "+ambiguous, nil)
	}
	if f.err != nil {
		f.token = ""
	}
	return f, nil
}

// Indexes of Gate.places, the names of the places a token may be in.
const (
	placeHeader     = iota // the header
	placeMeta              // _meta[MetaKey]
	placeMetaHeader        // _meta[header name]
	placeArgument          // the tool argument
)

func (g *Gate) initPlaces() {
	g.places = [4]string{
		"the " + g.header + " header",
		`_meta["` + MetaKey + `"]`,
		`_meta["` + g.header + `"]`,
		"the " + g.arg + " argument",
	}
}
