package kyapaymcpgo

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
)

// FuzzResolve feeds tools/call params as a client may send them: whatever
// the arguments and _meta hold, resolve never panics, the token argument is
// gone from both Arguments and RawArguments, the other arguments keep their
// values, and the token it returns is one the call carried. The decision
// itself (one token, none, or a refusal) is mcpgate's, fuzzed there.
func FuzzResolve(f *testing.F) {
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":"eyA","x":1},"_meta":{"xyz.skyfire/pay-id":"eyA"}}`), "")
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":"eyA","skyfire-pay-id":"eyB"}}`), "eyB")
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":7,"n":12345678901234567890}}`), "")
	f.Add([]byte(`{"name":"t","arguments":[1,2],"_meta":{"xyz.skyfire/pay-id":{"a":1}}}`), "h")
	f.Add([]byte(`{"name":"t","arguments":"str"}`), "")
	f.Add([]byte(`{"name":"t","_meta":{"skyfire-pay-id":" eyA ","xyz.skyfire/pay-id":"eyA"}}`), "eyA")
	g, err := New(sellertest.New(f).Middleware, Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, params []byte, header string) {
		var p mcp.CallToolParams
		if json.Unmarshal(params, &p) != nil {
			return
		}
		before, _ := json.Marshal(p.Arguments)
		sources := map[string]bool{strings.TrimSpace(header): true}
		if args, ok := p.Arguments.(map[string]any); ok {
			if s, ok := args[DefaultArgument].(string); ok {
				sources[strings.TrimSpace(s)] = true
			}
		}
		if p.Meta != nil {
			for _, k := range []string{DefaultMetaKey, kyapay.HeaderName} {
				if s, ok := p.Meta.AdditionalFields[k].(string); ok {
					sources[strings.TrimSpace(s)] = true
				}
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
		// encoding/json keeps the last of duplicate members, RawArguments
		// all of them; an earlier one may hold the token in escaped form.
		if tok != "" && !sources[tok] && !bytes.Contains(params, []byte(tok)) {
			t.Fatalf("token %q came from nowhere", tok)
		}
	})
}

// Duplicate token arguments that differ are token_ambiguous, as in every
// other place: encoding/json would keep the last one only, and the raw
// arguments a typed handler binds would still hold the first. All of them
// are removed, and the other members keep their bytes and order.
func TestResolveDuplicateArguments(t *testing.T) {
	g, err := New(sellertest.New(t).Middleware, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params string
		tok    string
		code   kyapay.Code
	}{
		{`{"name":"t","arguments":{"z":1.50,"skyfire-pay-id":"eyA","a":2,"skyfire-pay-id":"eyB"}}`, "", kyapay.CodeTokenAmbiguous},
		{`{"name":"t","arguments":{"z":1.50,"skyfire-pay-id":"eyA","a":2,"skyfire-pay-id":null}}`, "eyA", ""},
		{`{"name":"t","arguments":{"z":1.50,"skyfire-pay-id":"eyA","a":2,"skyfire-pay-id":" eyA"}}`, "eyA", ""},
	} {
		var p mcp.CallToolParams
		if err := json.Unmarshal([]byte(tc.params), &p); err != nil {
			t.Fatal(err)
		}
		req := mcp.CallToolRequest{Params: p}
		tok, err := g.resolve(&req)
		if tok != tc.tok || kyapay.CodeOf(err) != tc.code && !(tc.code == "" && err == nil) {
			t.Errorf("%s: got %q, %v; want %q, %q", tc.params, tok, err, tc.tok, tc.code)
		}
		if string(req.Params.RawArguments) != `{"z":1.50,"a":2}` {
			t.Errorf("%s: RawArguments %s", tc.params, req.Params.RawArguments)
		}
		if args, _ := req.Params.Arguments.(map[string]any); len(args) != 2 {
			t.Errorf("%s: Arguments %v", tc.params, req.Params.Arguments)
		}
	}
}
