package kyapaycaddy

import (
	"encoding/json"
	"testing"
)

func TestParseRPC(t *testing.T) {
	ok := []struct {
		body string
		want rpcCall
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"name":"not this"}}}`, rpcCall{true, "search"}},
		{`{"params":{"arguments":{},"name":"late"},"method":"tools/call"}`, rpcCall{true, "late"}},
		{` {"method":"tools\/call","params":{"name":"\u0073earch"}} `, rpcCall{true, "search"}},
		{`{"method":"tools/list"}`, rpcCall{}},
		{`{"method":"tools/call2","params":{"name":"x"}}`, rpcCall{}},
		{`{"jsonrpc":"2.0","id":1,"result":{"method":"tools/call"}}`, rpcCall{}},
		{`[{"method":"ping"},{"method":"notifications/cancelled","params":{"name":"x"}}]`, rpcCall{}},
		{`{"method":"initialize","params":[1,2,{"name":3}]}`, rpcCall{}},
	}
	for _, c := range ok {
		got, err := parseRPC([]byte(c.body))
		if err != nil || got != c.want {
			t.Errorf("parseRPC(%s) = %+v, %v; want %+v", c.body, got, err, c.want)
		}
	}
	bad := []string{
		``, `null`, `"tools/call"`, `[]`, `[1]`, `{`, `{"method":"tools/list"`,
		`{"method":"tools/list"}x`, `{"method":"a","method":"b"}`, `{"METHOD":"tools/call"}`,
		`{"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`,
		`{"method":"tools/call","params":{"name":"a","Name":"b"}}`,
		`{"method":"tools/call","params":{"name":1}}`, `{"method":"tools/call","params":null}`,
		`{"method":"tools/call","params":"x"}`, `{"method":"tools/call"}`, `{"method":null}`,
		`[{"method":"tools/call","params":{"name":"a"}}]`, "{\"method\":\"\xc3\"}",
		`{"method":"tools/list","params":{"x":}}`,
	}
	for _, b := range bad {
		if got, err := parseRPC([]byte(b)); err == nil {
			t.Errorf("parseRPC(%q) = %+v; want an error", b, got)
		}
	}
}

// FuzzParseRPC checks parseRPC against encoding/json: whatever it accepts
// is valid JSON, and its reading of the method and tool name is the one
// encoding/json's strict map decoding and its case-insensitive struct
// decoding both make, so an upstream decoding either way calls the tool
// the gate priced.
func FuzzParseRPC(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`,
		`{"method":"tools/list"}`, `[{"method":"ping"}]`,
		`{"method":"tools/list","Method":"tools/call","params":{"name":"x"}}`,
		`{"method":"tools/call","params":{"name":"a","nAme":"b"}}`,
		`{"method":"tools/call","paramſ":{"name":"x"},"params":{"name":"y"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		call, err := parseRPC(body)
		if err != nil {
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted invalid JSON %q: %v", body, err)
		}
		msgs := []any{v}
		if arr, ok := v.([]any); ok {
			msgs = arr
		}
		calls := 0
		for _, m := range msgs {
			obj, ok := m.(map[string]any)
			if !ok {
				t.Fatalf("accepted a non-object message in %q", body)
			}
			// The message as written, for the case-insensitive decoding
			// to see every spelling of its keys in their order.
			src := body
			if _, batch := v.([]any); batch {
				src = mustMarshal(t, m)
			}
			var s struct {
				Method any `json:"method"`
				Params struct {
					Name any `json:"name"`
				} `json:"params"`
			}
			_ = json.Unmarshal(src, &s)
			if obj["method"] != "tools/call" && s.Method != "tools/call" {
				continue
			}
			calls++
			params, _ := obj["params"].(map[string]any)
			if !call.toolCall || params["name"] != call.tool {
				t.Fatalf("%q: parsed %+v; encoding/json reads a call of %v", body, call, params["name"])
			}
			if s.Method != "tools/call" || s.Params.Name != call.tool {
				t.Fatalf("%q: parsed %+v; case-insensitive decoding reads %v of %v", body, call, s.Method, s.Params.Name)
			}
		}
		if call.toolCall && calls != 1 {
			t.Fatalf("%q: parsed %+v; encoding/json sees %d calls", body, call, calls)
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
