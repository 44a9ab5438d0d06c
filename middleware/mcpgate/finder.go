package mcpgate

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/kyapay/kyapay-go/kyapay"
)

// ErrArgumentsNotObject is returned by [Finder.Arguments] for tool
// arguments that are neither absent, null nor a JSON object, so that no
// argument can be found in them or removed from them. A front end answers
// such a call with a JSON-RPC invalid-params error.
var ErrArgumentsNotObject = errors.New("mcpgate: tool arguments are not a JSON object")

// Indexes of Gate.places, the places a token may be in.
const (
	placeHeader     = iota // the header
	placeMeta              // _meta[metaKey]
	placeMetaHeader        // _meta[header name]
	placeArgument          // the tool argument
)

// Finder collects the occurrences of the token in one tool call and
// decides: one token, none, or a refusal. The same token in several places
// is one token; two different tokens are token_ambiguous, as are two
// header lines; a value that is not a string is token_malformed. Values are
// trimmed of surrounding white space, and an empty one is no token.
//
// Get one per call from [Gate.NewFinder], feed it what the call carries in
// the order the places are read (the header, the _meta, the argument), so
// that a refusal names them in that order, and read [Finder.Result]. A
// Finder is not safe for concurrent use.
type Finder struct {
	g         *Gate
	token     string
	first     string // where token was found
	ambiguous string // where a different token was found
	malformed string // where a value that is not a string was found
	err       error
}

// NewFinder returns a Finder for one call.
func (g *Gate) NewFinder() Finder { return Finder{g: g} }

// Header records the lines of the Middleware's token header in h, the
// header of the HTTP request that carried the call (nil for none).
func (f *Finder) Header(h http.Header) {
	switch vals := h.Values(f.g.header); len(vals) {
	case 0:
	case 1:
		f.add(placeHeader, vals[0])
	default:
		f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous, "more than one "+f.g.header+" header", nil)
	}
}

// Meta records the token entries of meta, the call's _meta as decoded
// from JSON: the one under [Gate.MetaKey], then the one under the header
// name. [Gate.MetaWithoutToken] removes them.
func (f *Finder) Meta(meta map[string]any) {
	if v, ok := meta[f.g.metaKey]; ok {
		f.value(placeMeta, v)
	}
	if v, ok := meta[f.g.header]; ok {
		f.value(placeMetaHeader, v)
	}
}

// Argument records v, the value of the token argument in arguments
// decoded from JSON: a string is a token, nil none, anything else
// malformed. [Finder.Arguments] is the form for raw JSON arguments.
func (f *Finder) Argument(v any) { f.value(placeArgument, v) }

// Arguments takes the token argument out of args, a call's raw JSON
// arguments: it records the value of every top-level member named
// [Gate.Argument] (member names compared after JSON unescaping, as every
// JSON decoder does) and returns args without them. Every other member
// keeps its exact bytes, so numbers are never re-encoded; when no member
// is the argument, the result is args itself. Empty or null arguments have
// no members. Anything else that is not a JSON object is
// [ErrArgumentsNotObject], and nothing is recorded.
func (f *Finder) Arguments(args json.RawMessage) (json.RawMessage, error) {
	out, vals, err := splitArgument(args, f.g.arg)
	if err != nil {
		return nil, err
	}
	for _, v := range vals {
		if v.notString {
			f.notString(placeArgument)
		} else {
			f.add(placeArgument, v.token)
		}
	}
	return out, nil
}

// Result returns the token found, "" for none, or the refusal (a
// *[kyapay.Error] with code token_ambiguous or token_malformed, which
// names the places but never holds a token) for [Gate.Authorize].
func (f *Finder) Result() (string, error) {
	switch {
	case f.err != nil:
	case f.malformed != "":
		f.err = kyapay.NewError(kyapay.CodeTokenMalformed, "the token in "+f.malformed+" is not a string", nil)
	case f.ambiguous != "":
		f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous,
			"the request carries two different tokens, in "+f.first+" and in "+f.ambiguous, nil)
	}
	if f.err != nil {
		return "", f.err
	}
	return f.token, nil
}

// value records a JSON value found at place: a string is a token, null
// is none, anything else is malformed.
func (f *Finder) value(place int, v any) {
	switch v := v.(type) {
	case nil:
	case string:
		f.add(place, v)
	default:
		f.notString(place)
	}
}

func (f *Finder) add(place int, tok string) {
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "":
	case f.token == "":
		f.token, f.first = tok, f.g.places[place]
	case tok != f.token && f.ambiguous == "":
		f.ambiguous = f.g.places[place]
	}
}

func (f *Finder) notString(place int) {
	if f.malformed == "" {
		f.malformed = f.g.places[place]
	}
}
