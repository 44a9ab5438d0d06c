package kyapaycaddy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

func rpc(method, tool string) []byte {
	m := map[string]any{"jsonrpc": "2.0", "id": 7, "method": method}
	if tool != "" {
		m["params"] = map[string]any{"name": tool, "arguments": map[string]any{"q": "caddy"}}
	}
	b, _ := json.Marshal(m)
	return b
}

// An MCP endpoint priced per tool: tools/call is gated and charged by the
// tool's price, the body reaches the upstream unchanged, and every other
// method passes without a token.
func TestMCP(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay /mcp {
		price 0.03
		mcp {
			tool search 0.01
			tool fetch  0.05
			tool whoami free
			tool help   open
		}
	}
	reverse_proxy {up}`)

	tok := e.iss.Mint(kyapay.TypePay)
	post := func(body []byte, token string) result {
		t.Helper()
		return e.do(t, http.MethodPost, "/mcp", token, body, "Content-Type", "application/json", "Accept", "application/json, text/event-stream")
	}

	// Free methods and open tools: no token, no charge.
	for _, body := range [][]byte{
		rpc("initialize", ""), rpc("tools/list", ""), rpc("tools/call", "help"),
		[]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`),
		[]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"result":{}}]`),
	} {
		res := post(body, "")
		if res.status != http.StatusOK || res.body != string(body) {
			t.Errorf("%s without a token: got %d %q; want the upstream's echo", body, res.status, res.body)
		}
	}
	if res := e.get(t, "/mcp", ""); res.status != http.StatusOK {
		t.Errorf("GET (event stream) without a token: got %d", res.status)
	}

	// Paid tools: charged their price; the upstream gets the very body.
	for _, tool := range []string{"search", "fetch", "unlisted", "whoami"} {
		body := rpc("tools/call", tool)
		res := post(body, tok)
		if res.status != http.StatusOK || res.body != string(body) {
			t.Errorf("tools/call %s: got %d %q", tool, res.status, res.body)
		}
		if got := e.upstream.last(t).body; !bytes.Equal(got, body) {
			t.Errorf("tools/call %s: upstream body %q; want %q", tool, got, body)
		}
	}
	if got := chargedAmounts(e.iss); !slices.Equal(got, []string{"0.01", "0.05", "0.03"}) {
		t.Errorf("charges = %v; want [0.01 0.05 0.03] (search, fetch, the default price; whoami free)", got)
	}

	// Without a token a paid tool is refused, as a JSON-RPC result with the
	// caller's id.
	res := post(rpc("tools/call", "fetch"), "")
	if res.status != http.StatusPaymentRequired || res.header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenMissing) {
		t.Fatalf("fetch without a token: got %d %q", res.status, res.body)
	}
	var refusal struct {
		ID     int `json:"id"`
		Result struct {
			IsError           bool `json:"isError"`
			StructuredContent struct {
				RequiredAmount string `json:"requiredAmount"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(res.body), &refusal); err != nil || refusal.ID != 7 || !refusal.Result.IsError || refusal.Result.StructuredContent.RequiredAmount != "0.05" {
		t.Errorf("refusal %q (%v); want a JSON-RPC result for id 7 requiring 0.05", res.body, err)
	}
	// whoami is free but still needs a token.
	if res := post(rpc("tools/call", "whoami"), ""); res.status != http.StatusPaymentRequired {
		t.Errorf("free tool without a token: got %d", res.status)
	}
}

// Bodies the gate cannot read for certain are refused and not forwarded.
func TestMCPRefusesAmbiguousBodies(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay /mcp {
		mcp {
			max_body 512
			tool cheap open
		}
	}
	reverse_proxy {up}`)
	cases := []struct {
		name   string
		body   string
		status int
	}{
		{"not JSON", `hello`, 400},
		{"trailing data", `{"method":"tools/list"} {"method":"tools/call","params":{"name":"x"}}`, 400},
		{"second method", `{"method":"tools/list","method":"tools/call","params":{"name":"x"}}`, 400},
		{"method in another case", `{"method":"tools/list","Method":"tools/call","params":{"name":"x"}}`, 400},
		{"params spelled with a long s", `{"method":"tools/call","params":{"name":"cheap"},"paramſ":{"name":"x"}}`, 400},
		{"second name", `{"method":"tools/call","params":{"name":"cheap","name":"x"}}`, 400},
		{"name in another case", `{"method":"tools/call","params":{"name":"cheap","NAME":"x"}}`, 400},
		{"tools/call without a name", `{"method":"tools/call","params":{}}`, 400},
		{"method not a string", `{"method":["tools/call"]}`, 400},
		{"batch with a call", `[{"method":"tools/list"},{"method":"tools/call","params":{"name":"cheap"}}]`, 400},
		{"invalid UTF-8", "{\"method\":\"tools/list\",\"x\":\"\xff\"}", 400},
		{"too large", `{"method":"tools/list","pad":"` + strings.Repeat("x", 600) + `"}`, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.upstream.requests())
			res := e.do(t, http.MethodPost, "/mcp", "", []byte(c.body), "Content-Type", "application/json")
			if res.status != c.status {
				t.Errorf("got %d %q; want %d", res.status, res.body, c.status)
			}
			if len(e.upstream.requests()) != before {
				t.Errorf("the body reached the upstream")
			}
		})
	}
	// The escaped spelling of a method is the method.
	res := e.do(t, http.MethodPost, "/mcp", "", []byte(`{"method":"tools\/call","params":{"name":"x"}}`), "Content-Type", "application/json")
	if res.status != http.StatusPaymentRequired {
		t.Errorf("escaped tools/call: got %d; want 402", res.status)
	}
}
