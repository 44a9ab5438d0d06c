package kyapaymcp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// A handler registered through AddTool runs only for calls its own gate
// decided; any other call is refused with internal_error.
func TestGuardRefusesUngatedCall(t *testing.T) {
	s := sellertest.New(t)
	g, err := New(s.Middleware, Config{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(s.Middleware, Config{})
	if err != nil {
		t.Fatal(err)
	}
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "quote"}}
	mark := func(gate *Gate, tool string) context.Context {
		return context.WithValue(context.Background(), callKey{}, &gatedCall{gate: gate, tool: tool, req: req})
	}
	ran := 0
	raw := g.guard("quote", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		ran++
		return &mcp.CallToolResult{}, nil
	})
	typed := guardFor(g, "quote", func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, int, error) {
		ran++
		return nil, 1, nil
	})
	for name, ctx := range map[string]context.Context{
		"no gate":    context.Background(),
		"other gate": mark(other, "quote"),
		"other tool": mark(g, "report"),
	} {
		res, err := raw(ctx, req)
		if err != nil || !res.IsError || res.StructuredContent.(middleware.RefusalDetail).Error != kyapay.CodeInternal {
			t.Errorf("%s: raw handler answered %v %v", name, res, err)
		}
		if _, _, err := typed(ctx, req, struct{}{}); kyapay.CodeOf(err) != kyapay.CodeInternal {
			t.Errorf("%s: typed handler answered %v", name, err)
		}
	}
	if ran != 0 {
		t.Fatalf("handlers ran %d times without the gate", ran)
	}
	if res, err := raw(mark(g, "quote"), req); err != nil || res.IsError {
		t.Errorf("gated raw call refused: %v %v", res, err)
	}
	if _, out, err := typed(mark(g, "quote"), req, struct{}{}); err != nil || out != 1 {
		t.Errorf("gated typed call refused: %v", err)
	}
	if ran != 2 {
		t.Errorf("handlers ran %d times, want 2", ran)
	}
}

// withArgument adds the argument to a copy of every schema shape the SDK
// accepts, keeping the original and its numbers intact.
func TestWithArgument(t *testing.T) {
	s := sellertest.New(t)
	g, err := New(s.Middleware, Config{Tools: map[string]Requirement{"quote": {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))}}})
	if err != nil {
		t.Fatal(err)
	}
	gt := g.core.Tool("quote")
	prop, _ := json.Marshal(map[string]string{"type": "string", "description": gt.ArgumentDescription()})
	propJS, _ := json.Marshal(&jsonschema.Schema{Type: "string", Description: gt.ArgumentDescription()})
	js := &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{"a": {Type: "string"}}, PropertyOrder: []string{"a"}}
	mp := map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "string"}}}
	raw := json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}},"additionalProperties":false}`)
	for name, tc := range map[string]struct {
		in   any
		want string
	}{
		"jsonschema":    {js, `{"type":"object","properties":{"a":{"type":"string"},"skyfire-pay-id":` + string(propJS) + `}}`},
		"map":           {mp, `{"properties":{"a":{"type":"string"},"skyfire-pay-id":` + string(prop) + `},"type":"object"}`},
		"raw":           {raw, `{"additionalProperties":false,"properties":{"n":{"type":"integer","maximum":12345678901234567890},"skyfire-pay-id":` + string(prop) + `},"type":"object"}`},
		"no properties": {json.RawMessage(`{"type":"object"}`), `{"properties":{"skyfire-pay-id":` + string(prop) + `},"type":"object"}`},
		"not an object": {json.RawMessage(`true`), `true`},
		"nil schema":    {(*jsonschema.Schema)(nil), `null`},
	} {
		got, err := json.Marshal(g.withArgument(tc.in, gt))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\n got %s %v\nwant %s", name, got, err, tc.want)
		}
	}
	if len(js.Properties) != 1 || len(js.PropertyOrder) != 1 || len(mp["properties"].(map[string]any)) != 1 ||
		string(raw) != `{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}},"additionalProperties":false}` {
		t.Errorf("an original schema was modified: %v %v %v %s", js.Properties, js.PropertyOrder, mp, raw)
	}
	if _, ok := g.withArgument(js, gt).(*jsonschema.Schema); !ok {
		t.Error("a *jsonschema.Schema was not decorated as one")
	}
}

// FuzzTakeToken feeds tools/call params and a header line as a client may
// send them: takeToken never panics, neither the arguments nor the _meta
// it returns hold a token entry, every other _meta entry is kept, and the
// token it returns is one the call carried (trimmed), or there is a
// token_ambiguous or token_malformed refusal and no token.
func FuzzTakeToken(f *testing.F) {
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":"eyA","x":1},"_meta":{"xyz.skyfire/pay-id":"eyA"}}`), "")
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":"eyA","skyfire-pay-id":"eyB"}}`), "eyB")
	f.Add([]byte(`{"name":"t","arguments":{"skyfire-pay-id":7},"_meta":{"skyfire-pay-id":" eyA ","p":1}}`), "eyA")
	f.Add([]byte(`{"name":"t","_meta":{"xyz.skyfire/pay-id":{"a":1}}}`), "h")
	f.Add([]byte(`{"name":"t","arguments":[1]}`), "")
	g, err := New(sellertest.New(f).Middleware, Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, params []byte, header string) {
		var p mcp.CallToolParamsRaw
		if json.Unmarshal(params, &p) != nil {
			return
		}
		sources := map[string]bool{strings.TrimSpace(header): true}
		for _, k := range []string{DefaultMetaKey, kyapay.HeaderName} {
			if s, ok := p.Meta[k].(string); ok {
				sources[strings.TrimSpace(s)] = true
			}
		}
		var args map[string]any
		if json.Unmarshal(p.Arguments, &args) == nil {
			if s, ok := args[DefaultArgument].(string); ok {
				sources[strings.TrimSpace(s)] = true
			}
		}
		extra := &mcp.RequestExtra{Header: http.Header{}}
		if header != "" {
			extra.Header.Set(kyapay.HeaderName, header)
		}
		found, err := g.takeToken(&mcp.CallToolRequest{Params: &p, Extra: extra})
		if err != nil {
			return // arguments that are not an object
		}
		var out map[string]json.RawMessage
		if json.Unmarshal(found.args, &out) == nil {
			if _, left := out[DefaultArgument]; left {
				t.Fatal("argument left in the arguments")
			}
		}
		for _, k := range []string{DefaultMetaKey, kyapay.HeaderName} {
			if _, left := found.meta[k]; left {
				t.Fatalf("_meta[%q] left", k)
			}
		}
		for k := range p.Meta {
			if _, kept := found.meta[k]; !kept && k != DefaultMetaKey && k != kyapay.HeaderName {
				t.Fatalf("_meta[%q] lost", k)
			}
		}
		if found.err != nil {
			if c := kyapay.CodeOf(found.err); c != kyapay.CodeTokenAmbiguous && c != kyapay.CodeTokenMalformed {
				t.Fatalf("unexpected error %v", found.err)
			}
			if found.token != "" {
				t.Fatal("a token with an error")
			}
			return
		}
		// encoding/json keeps the last of duplicate members; an earlier one
		// may hold the token in escaped form.
		if found.token != "" && !sources[found.token] && !bytes.Contains(params, []byte(found.token)) {
			t.Fatalf("token %q came from nowhere", found.token)
		}
	})
}
