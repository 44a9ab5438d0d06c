package kyapaymcpgo

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
)

// FuzzResolve feeds tools/call params as a client may send them: whatever
// the arguments and _meta hold, resolve never panics, the token argument is
// gone from both Arguments and RawArguments, the other arguments keep their
// values, and the token it returns is one the call carried.
func FuzzResolve(f *testing.F) {
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":"eyA","x":1},"_meta":{"xyz.skyfire/pay-id":"eyA"}}`), "")
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":"eyA","skyfire-pay-id":"eyB"}}`), "eyB")
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":7,"n":12345678901234567890}}`), "")
	f.Add([]byte(`{"name":"t","arguments":[1,2],"_meta":{"xyz.skyfire/pay-id":{"a":1}}}`), "h")
	f.Add([]byte(`{"name":"t","arguments":"str"}`), "")
	g := &Gate{arg: DefaultArgument, metaKey: DefaultMetaKey, header: kyapay.HeaderName}
	f.Fuzz(func(t *testing.T, params []byte, header string) {
		var p mcp.CallToolParams
		if json.Unmarshal(params, &p) != nil {
			return
		}
		before, _ := json.Marshal(p.Arguments)
		sources := map[string]bool{header: true}
		if args, ok := p.Arguments.(map[string]any); ok {
			if s, ok := args[DefaultArgument].(string); ok {
				sources[s] = true
			}
		}
		if p.Meta != nil {
			if s, ok := p.Meta.AdditionalFields[DefaultMetaKey].(string); ok {
				sources[s] = true
			}
		}
		req := mcp.CallToolRequest{Params: p, Header: http.Header{}}
		if header != "" {
			req.Header.Set(kyapay.HeaderName, header)
		}
		tok, err := g.resolve(&req)
		if args, ok := req.Params.Arguments.(map[string]any); ok {
			if _, left := args[DefaultArgument]; left {
				t.Fatal("argument left in Arguments")
			}
		}
		if len(req.Params.RawArguments) > 0 {
			var obj map[string]json.RawMessage
			if json.Unmarshal(req.Params.RawArguments, &obj) == nil {
				if _, left := obj[DefaultArgument]; left {
					t.Fatal("argument left in RawArguments")
				}
			}
		}
		// The caller's arguments map is not changed.
		after, _ := json.Marshal(p.Arguments)
		if !bytes.Equal(before, after) {
			t.Fatal("resolve changed the caller's arguments")
		}
		if err != nil {
			var ke *kyapay.Error
			if !errors.As(err, &ke) || (ke.Code != kyapay.CodeTokenAmbiguous && ke.Code != kyapay.CodeTokenMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			if tok != "" {
				t.Fatal("a token with an error")
			}
			return
		}
		if tok != "" && !sources[tok] {
			t.Fatalf("token %q came from nowhere", tok)
		}
	})
}

// FuzzAddRawProperty: a raw schema either gets the property, with every
// other member kept, or is reported as not an object; it never panics.
func FuzzAddRawProperty(f *testing.F) {
	f.Add([]byte(`{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}`))
	f.Add([]byte(`{"type":"object"}`))
	f.Add([]byte(`{"properties":null}`))
	f.Add([]byte(`{"properties":[]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	prop := map[string]any{"type": "string"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := addRawProperty(raw, DefaultArgument, prop)
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("output is not an object: %s", out)
		}
		var props map[string]json.RawMessage
		if err := json.Unmarshal(obj["properties"], &props); err != nil || props[DefaultArgument] == nil {
			t.Fatalf("no property in %s", out)
		}
		var in map[string]json.RawMessage
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatalf("accepted a non-object %s", raw)
		}
		for k := range in {
			if _, ok := obj[k]; !ok {
				t.Fatalf("member %q lost", k)
			}
		}
	})
}
