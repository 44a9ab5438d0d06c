package kyapaymcp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
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
		if err != nil || !res.IsError || res.StructuredContent.(RefusalContent).Error != kyapay.CodeInternal {
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

// needsRequest tells PriceFunc prices from the others.
func TestNeedsRequest(t *testing.T) {
	for _, tc := range []struct {
		p    middleware.Price
		want bool
	}{
		{middleware.PriceFunc(func(*http.Request) (kyapay.Amount, error) { return kyapay.Amount{}, nil }), true},
		{middleware.PriceFunc(nil), false}, // refused by Route anyway
		{middleware.Price{}, false},
		{middleware.FixedPrice("0.01"), false},
		{middleware.ServicePrice(), false},
		{middleware.ContextPrice(func(context.Context) (kyapay.Amount, error) { return kyapay.Amount{}, nil }), false},
	} {
		if got := needsRequest(tc.p); got != tc.want {
			t.Errorf("needsRequest(%+v) = %v", tc.p, got)
		}
	}
	if !reflect.ValueOf(middleware.Price{}).FieldByName("fn").IsValid() {
		t.Fatal("middleware.Price has no field fn any more: needsRequest cannot see PriceFunc prices")
	}
}

func TestSplitArgument(t *testing.T) {
	const name = "skyfire-pay-id"
	for _, tc := range []struct {
		in, out string
		vals    []argValue
		err     bool
	}{
		{in: ``, out: ``},
		{in: ` `, out: ` `},
		{in: `null`, out: `null`},
		{in: `{}`, out: `{}`},
		{in: `{"a":1}`, out: `{"a":1}`},
		{in: `{"skyfire-pay-id":"ey.a.b"}`, out: `{}`, vals: []argValue{{token: "ey.a.b"}}},
		{in: ` { "a" : 1.50e3 , "skyfire-pay-id" : "t" , "b" : [ "}" , {"skyfire-pay-id":"x"} ] } `,
			out: `{"a" : 1.50e3,"b" : [ "}" , {"skyfire-pay-id":"x"} ]}`, vals: []argValue{{token: "t"}}},
		{in: `{"skyfire\u002dpay-id":"t\u0031"}`, out: `{}`, vals: []argValue{{token: "t1"}}},
		{in: `{"skyfire-pay-id":"a","skyfire-pay-id":"b"}`, out: `{}`, vals: []argValue{{token: "a"}, {token: "b"}}},
		{in: `{"skyfire-pay-id":null,"x":"\"skyfire-pay-id\""}`, out: `{"x":"\"skyfire-pay-id\""}`, vals: []argValue{{}}},
		{in: `{"skyfire-pay-id":12}`, out: `{}`, vals: []argValue{{notString: true}}},
		{in: `{"skyfire-pay-id":{"t":"x"}}`, out: `{}`, vals: []argValue{{notString: true}}},
		{in: `{"Skyfire-Pay-Id":"t"}`, out: `{"Skyfire-Pay-Id":"t"}`},
		{in: `[1]`, err: true},
		{in: `"x"`, err: true},
		{in: `{"a":}`, err: true},
		{in: `{"a":1}{}`, err: true},
	} {
		out, vals, err := splitArgument(json.RawMessage(tc.in), name)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.in, err)
			continue
		}
		if tc.err {
			continue
		}
		if string(out) != tc.out || !reflect.DeepEqual(vals, tc.vals) {
			t.Errorf("%s:\n got %s %+v\nwant %s %+v", tc.in, out, vals, tc.out, tc.vals)
		}
	}
}

// FuzzSplitArgument checks splitArgument against encoding/json: on any
// object the output is an object without the argument, every other member
// keeps its exact bytes, and the values found are the argument's; anything
// that is not an object, null or empty is refused.
func FuzzSplitArgument(f *testing.F) {
	for _, s := range []string{`{}`, `{"skyfire-pay-id":"ey"}`, `{"a":[1,{"b":"}"}],"skyfire-pay-id":null}`,
		`{"skyfire\u002dpay-id":"x","skyfire-pay-id":"y"}`, `null`, `[]`, `{"a":"\\\""}`, ` {"a" : 1e5 } `} {
		f.Add(s)
	}
	const name = "skyfire-pay-id"
	f.Fuzz(func(t *testing.T, in string) {
		out, vals, err := splitArgument(json.RawMessage(in), name)
		trimmed := strings.Trim(in, " \t\r\n") // JSON white space only
		var members map[string]json.RawMessage
		isObject := json.Valid([]byte(in)) && strings.HasPrefix(trimmed, "{") && json.Unmarshal([]byte(in), &members) == nil
		switch {
		case trimmed == "" || (json.Valid([]byte(in)) && trimmed == "null"):
			if err != nil || string(out) != in || vals != nil {
				t.Fatalf("%q: %q %v %v", in, out, vals, err)
			}
			return
		case !isObject:
			if err == nil {
				t.Fatalf("%q accepted: %q", in, out)
			}
			return
		case err != nil:
			t.Fatalf("%q refused: %v", in, err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %q: %v", in, out, err)
		}
		if _, ok := got[name]; ok {
			t.Fatalf("%q -> %q still has the argument", in, out)
		}
		want, ok := members[name]
		if ok != (len(vals) > 0) {
			t.Fatalf("%q: found %v, encoding/json %v", in, vals, ok)
		}
		if ok {
			// encoding/json keeps the last duplicate.
			last := vals[len(vals)-1]
			var s *string
			if err := json.Unmarshal(want, &s); err != nil {
				if !last.notString {
					t.Fatalf("%q: %s read as %+v", in, want, last)
				}
			} else if last.notString || (s == nil && last.token != "") || (s != nil && *s != last.token) {
				t.Fatalf("%q: %s read as %+v", in, want, last)
			}
		}
		delete(members, name)
		if len(got) != len(members) {
			t.Fatalf("%q -> %q: members %d, want %d", in, out, len(got), len(members))
		}
		for k, v := range members {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q -> %q: member %q is %s, want %s", in, out, k, got[k], v)
			}
		}
		if len(vals) == 0 && string(out) != in {
			t.Fatalf("%q rewritten to %q without an argument", in, out)
		}
	})
}

// withProperty adds the argument to a copy of every schema shape the SDK
// accepts, keeping the original and its numbers intact.
func TestWithProperty(t *testing.T) {
	const arg = "skyfire-pay-id"
	js := &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{"a": {Type: "string"}}, PropertyOrder: []string{"a"}}
	mp := map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "string"}}}
	raw := json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}},"additionalProperties":false}`)
	for name, tc := range map[string]struct {
		in   any
		want string
	}{
		"jsonschema":    {js, `{"type":"object","properties":{"a":{"type":"string"},"skyfire-pay-id":{"type":"string","description":"D"}}}`},
		"map":           {mp, `{"properties":{"a":{"type":"string"},"skyfire-pay-id":{"description":"D","type":"string"}},"type":"object"}`},
		"raw":           {raw, `{"additionalProperties":false,"properties":{"n":{"maximum":12345678901234567890,"type":"integer"},"skyfire-pay-id":{"description":"D","type":"string"}},"type":"object"}`},
		"no properties": {json.RawMessage(`{"type":"object"}`), `{"properties":{"skyfire-pay-id":{"description":"D","type":"string"}},"type":"object"}`},
		"not an object": {json.RawMessage(`true`), `true`},
	} {
		got, err := json.Marshal(withProperty(tc.in, arg, "D"))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\n got %s %v\nwant %s", name, got, err, tc.want)
		}
		if !hasProperty(withProperty(tc.in, arg, "D"), arg) && name != "not an object" {
			t.Errorf("%s: hasProperty false after withProperty", name)
		}
	}
	if len(js.Properties) != 1 || len(js.PropertyOrder) != 1 || len(mp["properties"].(map[string]any)) != 1 ||
		string(raw) != `{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}},"additionalProperties":false}` {
		t.Errorf("an original schema was modified: %v %v %v %s", js.Properties, js.PropertyOrder, mp, raw)
	}
}
