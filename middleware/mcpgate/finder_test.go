package mcpgate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// call is what one tool call carries, in the places a Finder reads.
type call struct {
	header []string
	meta   map[string]any
	args   string
}

func (c call) find(g *mcpgate.Gate) (tok string, err error, args json.RawMessage, argErr error) {
	f := g.NewFinder()
	h := http.Header{}
	for _, v := range c.header {
		h.Add(kyapay.HeaderName, v)
	}
	f.Header(h)
	f.Meta(c.meta)
	args, argErr = f.Arguments(json.RawMessage(c.args))
	tok, err = f.Result()
	return tok, err, args, argErr
}

func TestFinder(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	const (
		hdr  = "the skyfire-pay-id header"
		meta = `_meta["xyz.skyfire/pay-id"]`
		metH = `_meta["skyfire-pay-id"]`
		arg  = "the skyfire-pay-id argument"
	)
	for _, tc := range []struct {
		name  string
		call  call
		tok   string
		code  kyapay.Code
		where []string // the places the refusal names, in order
		args  string
	}{
		{name: "nothing", call: call{args: `{"a":1}`}, args: `{"a":1}`},
		{name: "header", call: call{header: []string{" eyH "}}, tok: "eyH"},
		{name: "meta key", call: call{meta: map[string]any{mcpgate.DefaultMetaKey: "eyM"}}, tok: "eyM"},
		{name: "meta header name", call: call{meta: map[string]any{kyapay.HeaderName: "eyM"}}, tok: "eyM"},
		{name: "argument", call: call{args: `{"skyfire-pay-id":"eyA","a":1}`}, tok: "eyA", args: `{"a":1}`},
		{name: "the same everywhere", call: call{header: []string{"eyT"}, meta: map[string]any{mcpgate.DefaultMetaKey: "eyT ", kyapay.HeaderName: "\teyT"},
			args: `{"skyfire-pay-id":"eyT","skyfire-pay-id":" eyT"}`}, tok: "eyT", args: `{}`},
		{name: "null and empty are none", call: call{header: []string{""}, meta: map[string]any{mcpgate.DefaultMetaKey: nil, kyapay.HeaderName: " "},
			args: `{"skyfire-pay-id":null}`}, args: `{}`},
		{name: "header and argument differ", call: call{header: []string{"eyH"}, args: `{"skyfire-pay-id":"eyA"}`},
			code: kyapay.CodeTokenAmbiguous, where: []string{hdr, arg}, args: `{}`},
		{name: "meta entries differ", call: call{meta: map[string]any{mcpgate.DefaultMetaKey: "eyA", kyapay.HeaderName: "eyB"}},
			code: kyapay.CodeTokenAmbiguous, where: []string{meta, metH}},
		{name: "duplicate arguments differ", call: call{args: `{"skyfire-pay-id":"eyA","skyfire-pay-id":"eyB"}`},
			code: kyapay.CodeTokenAmbiguous, where: []string{arg, arg}, args: `{}`},
		{name: "two header lines", call: call{header: []string{"eyH", "eyH"}}, code: kyapay.CodeTokenAmbiguous, where: []string{"more than one skyfire-pay-id header"}},
		{name: "meta not a string", call: call{meta: map[string]any{mcpgate.DefaultMetaKey: map[string]any{"t": "eyM"}}},
			code: kyapay.CodeTokenMalformed, where: []string{meta}},
		{name: "argument not a string", call: call{header: []string{"eyH"}, args: `{"skyfire-pay-id":7}`},
			code: kyapay.CodeTokenMalformed, where: []string{arg}, args: `{}`},
		{name: "malformed before ambiguous", call: call{header: []string{"eyH"}, meta: map[string]any{kyapay.HeaderName: true}, args: `{"skyfire-pay-id":"eyA"}`},
			code: kyapay.CodeTokenMalformed, where: []string{metH}, args: `{}`},
		{name: "two header lines before malformed", call: call{header: []string{"a", "b"}, args: `{"skyfire-pay-id":[]}`},
			code: kyapay.CodeTokenAmbiguous, where: []string{"more than one"}, args: `{}`},
	} {
		tok, err, args, argErr := tc.call.find(g)
		if argErr != nil || string(args) != tc.args {
			t.Errorf("%s: arguments %s, %v; want %s", tc.name, args, argErr, tc.args)
		}
		if tc.code == "" {
			if err != nil || tok != tc.tok {
				t.Errorf("%s: got %q, %v; want %q", tc.name, tok, err, tc.tok)
			}
			continue
		}
		msg := ""
		var ke *kyapay.Error
		if errors.As(err, &ke) {
			msg = ke.Message
		}
		if tok != "" || kyapay.CodeOf(err) != tc.code {
			t.Errorf("%s: got %q, %v; want %s", tc.name, tok, err, tc.code)
		}
		at := 0
		for _, w := range tc.where {
			i := strings.Index(msg[at:], w)
			if i < 0 {
				t.Errorf("%s: %q does not name %q in order", tc.name, msg, w)
				break
			}
			at += i + len(w)
		}
		for _, secret := range []string{"eyA", "eyB", "eyH", "eyM"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: refusal %q holds a token", tc.name, err)
			}
		}
	}
}

// Arguments that are not an object are refused and record nothing; the
// map form records a decoded argument.
func TestFinderArguments(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	for _, in := range []string{`[1]`, `"eyA"`, `{"skyfire-pay-id":"eyA"`, `{"a":1}{}`} {
		f := g.NewFinder()
		out, err := f.Arguments(json.RawMessage(in))
		if !errors.Is(err, mcpgate.ErrArgumentsNotObject) || out != nil {
			t.Errorf("%s: %s, %v", in, out, err)
		}
		if tok, err := f.Result(); tok != "" || err != nil {
			t.Errorf("%s: recorded %q, %v", in, tok, err)
		}
	}
	f := g.NewFinder()
	f.Argument("eyA")
	f.Argument(nil)
	if tok, err := f.Result(); tok != "eyA" || err != nil {
		t.Errorf("map form: %q, %v", tok, err)
	}
	f = g.NewFinder()
	f.Argument(12.0)
	if _, err := f.Result(); kyapay.CodeOf(err) != kyapay.CodeTokenMalformed {
		t.Errorf("map form, a number: %v", err)
	}
	// A custom argument name and _meta key are where the Finder looks.
	g2, _ := newGate(t, mcpgate.Config{Argument: "tok", MetaKey: "x/y"})
	f = g2.NewFinder()
	f.Meta(map[string]any{mcpgate.DefaultMetaKey: "eyD", "x/y": "eyC"})
	out, err := f.Arguments(json.RawMessage(`{"skyfire-pay-id":"eyD","tok":"eyC"}`))
	if tok, rerr := f.Result(); tok != "eyC" || rerr != nil || err != nil || string(out) != `{"skyfire-pay-id":"eyD"}` {
		t.Errorf("custom names: %q %v; arguments %s %v", tok, rerr, out, err)
	}
}

// FuzzFinder checks the Finder's decision against a model built with
// encoding/json: whatever the header lines, _meta and arguments, a
// refusal is token_ambiguous exactly when there are two header lines or
// two different tokens and no malformed value comes first, token_malformed
// exactly when a value is neither a string nor null, and otherwise the
// token is the one (trimmed) token the call carried.
func FuzzFinder(f *testing.F) {
	f.Add(uint8(1), "eyA", "", []byte(`{"xyz.skyfire/pay-id":"eyA"}`), []byte(`{"skyfire-pay-id":"eyA","x":1}`))
	f.Add(uint8(0), "", "", []byte(`{"skyfire-pay-id":" eyA "}`), []byte(`{"skyfire-pay-id":"eyA","skyfire-pay-id":"eyB"}`))
	f.Add(uint8(2), "eyA", "eyA", []byte(`{}`), []byte(`{}`))
	f.Add(uint8(1), "h", "", []byte(`{"xyz.skyfire/pay-id":{"a":1}}`), []byte(`null`))
	f.Add(uint8(0), "", "", []byte(`null`), []byte(`{"skyfire\u002dpay-id":7}`))
	f.Add(uint8(0), "", "", []byte(`{}`), []byte(`[1]`))
	g, _ := newGate(f, mcpgate.Config{})
	f.Fuzz(func(t *testing.T, lines uint8, h1, h2 string, metaJSON, args []byte) {
		var meta map[string]any
		if json.Unmarshal(metaJSON, &meta) != nil {
			return
		}
		c := call{meta: meta, args: string(args)}
		for _, h := range []string{h1, h2}[:min(int(lines%3), 2)] {
			if strings.ContainsAny(h, "\r\n") {
				return // not a header line
			}
			c.header = append(c.header, h)
		}
		tok, err, _, argErr := c.find(g)

		// The model.
		argVals, objOK := argumentValues(args)
		if !objOK {
			if !errors.Is(argErr, mcpgate.ErrArgumentsNotObject) {
				t.Fatalf("arguments %q: %v", args, argErr)
			}
			argVals = nil
		} else if argErr != nil {
			t.Fatalf("arguments %q refused: %v", args, argErr)
		}
		var vals []any
		for _, h := range c.header {
			vals = append(vals, h)
		}
		for _, k := range []string{mcpgate.DefaultMetaKey, kyapay.HeaderName} {
			if v, ok := meta[k]; ok {
				vals = append(vals, v)
			}
		}
		vals = append(vals, argVals...)
		tokens := map[string]bool{}
		malformed := false
		for _, v := range vals {
			switch v := v.(type) {
			case nil:
			case string:
				if s := strings.TrimSpace(v); s != "" {
					tokens[s] = true
				}
			default:
				malformed = true
			}
		}
		var want kyapay.Code
		switch {
		case len(c.header) > 1 || (!malformed && len(tokens) > 1):
			want = kyapay.CodeTokenAmbiguous
		case malformed:
			want = kyapay.CodeTokenMalformed
		}
		if kyapay.CodeOf(err) != want && !(want == "" && err == nil) {
			t.Fatalf("refusal %v, want %q (values %v)", err, want, vals)
		}
		if err != nil {
			if tok != "" {
				t.Fatal("a token with a refusal")
			}
			return
		}
		if (tok == "") != (len(tokens) == 0) || (tok != "" && !tokens[tok]) {
			t.Fatalf("token %q, want one of %v", tok, tokens)
		}
	})
}

// argumentValues is the model of the argument's occurrences: the value of
// every top-level member named DefaultArgument, read with
// encoding/json's streaming decoder; ok is false for arguments that are
// neither empty, null nor an object.
func argumentValues(args []byte) (vals []any, ok bool) {
	if len(bytes.TrimLeft(args, " \t\r\n")) == 0 {
		return nil, true
	}
	if !json.Valid(args) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	first, _ := dec.Token()
	if first == nil {
		return nil, true
	}
	if first != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		key, _ := dec.Token()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if key == mcpgate.DefaultArgument {
			vals = append(vals, v)
		}
	}
	return vals, true
}
