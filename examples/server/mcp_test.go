package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// mcpSeller serves newServer's handler for a configuration pointing at iss
// and returns its URL and the log it writes.
func mcpSeller(t *testing.T, iss *kyapaytest.Issuer, extra ...string) (string, *output) {
	t.Helper()
	cfg, err := loadConfig(envMap(sellerEnv(iss, extra...)))
	if err != nil {
		t.Fatal(err)
	}
	charger, err := newCharger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := newOutput()
	h, closeServer, err := newServer(cfg, slog.New(slog.NewJSONHandler(out, nil)), charger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeServer() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, out
}

// POST /mcp serves the quote, whoami and echo tools to the SDK's client:
// quote charged KYAPAY_PRICE with KYAPAY_CHARGE_MODE and answering the
// receipt, whoami answering the identity, echo free.
func TestMCPEndpoint(t *testing.T) {
	for _, tc := range []struct {
		mode, price string
		extra       []string
	}{
		{"before", "0.01", nil},
		{"after", "0.25", []string{envPrice, "0.25", envChargeMode, "after"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			iss := kyapaytest.NewIssuer()
			defer iss.Close()
			url, out := mcpSeller(t, iss, tc.extra...)
			ctx := t.Context()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).
				Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", DisableStandaloneSSE: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()

			list, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			listed := map[string]string{}
			for _, tl := range list.Tools {
				b, _ := json.Marshal(tl)
				listed[tl.Name] = string(b)
			}
			if len(listed) != 3 || !strings.Contains(listed["quote"], "costs "+tc.price+" USD") ||
				!strings.Contains(listed["quote"], "Paid tool: "+tc.price+" USD per call") ||
				!strings.Contains(listed["whoami"], "identity fields: email") || strings.Contains(listed["echo"], kyapaymcp.DefaultArgument) {
				t.Errorf("tools/list: %v", listed)
			}

			call := func(name string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
				t.Helper()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				b, _ := json.Marshal(res.StructuredContent)
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				return res, m
			}

			// quote
			res, sc := call("quote", nil)
			if !res.IsError || sc["error"] != "token_missing" || sc["requiredAmount"] != tc.price ||
				sc["argument"] != kyapaymcp.DefaultArgument || sc["metaKey"] != kyapaymcp.DefaultMetaKey {
				t.Errorf("quote without a token: %v %v", res.IsError, sc)
			}
			pay := iss.Mint(kyapay.TypePay)
			res, sc = call("quote", map[string]any{kyapaymcp.DefaultArgument: pay})
			if res.IsError || sc["jti"] != kyapaytest.TokenID(pay) || sc["chargeMode"] != tc.mode || sc["price"] != tc.price {
				t.Fatalf("quote: %v %v", res.IsError, sc)
			}
			if (tc.mode == "before") != (sc["charged"] == true) || (tc.mode == "before" && sc["amountCharged"] != tc.price) {
				t.Errorf("quote in %s mode: %v", tc.mode, sc)
			}
			rc, _ := res.Meta[kyapaymcp.ReceiptMetaKey].(map[string]any)
			if len(rc) != 2 || rc["amountCharged"] != tc.price || rc["remainingBalance"] == nil || iss.ChargeCount() != 1 {
				t.Errorf("quote receipt %v, %d charges", rc, iss.ChargeCount())
			}

			// whoami
			res, sc = call("whoami", map[string]any{kyapaymcp.DefaultArgument: pay})
			if !res.IsError || sc["error"] != "identity_required" {
				t.Errorf("whoami with a pay token: %v %v", res.IsError, sc)
			}
			kya := iss.Mint(kyapay.TypeKYA, kyapaytest.Email("ada@example.com"))
			res, sc = call("whoami", map[string]any{kyapaymcp.DefaultArgument: kya})
			hid, _ := sc["hid"].(map[string]any)
			if res.IsError || sc["type"] != "kya" || hid["email"] != "ada@example.com" || sc["jti"] != kyapaytest.TokenID(kya) {
				t.Errorf("whoami: %v %v", res.IsError, sc)
			}

			// echo
			res, sc = call("echo", map[string]any{"hello": "world"})
			if res.IsError || sc["hello"] != "world" {
				t.Errorf("echo: %v %v", res.IsError, sc)
			}
			if iss.ChargeCount() != 1 {
				t.Errorf("%d charges, want 1", iss.ChargeCount())
			}
			for _, tok := range []string{pay, kya} {
				if strings.Contains(out.String(), tok[strings.LastIndexByte(tok, '.')+1:]) {
					t.Errorf("the log holds a token:\n%s", out)
				}
			}
		})
	}
}

// The endpoint answers a plain JSON-RPC POST, as in the package
// documentation's curl example, without any session set-up.
func TestMCPEndpointPlainPOST(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	url, _ := mcpSeller(t, iss)
	pay := iss.Mint(kyapay.TypePay)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"quote","arguments":{}}}`
	req, err := http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(kyapay.HeaderName, pay)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var rpc struct {
		Result struct {
			IsError           bool           `json:"isError"`
			StructuredContent map[string]any `json:"structuredContent"`
			Meta              map[string]any `json:"_meta"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &rpc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
	}
	if rpc.Result.IsError || rpc.Result.StructuredContent["jti"] != kyapaytest.TokenID(pay) || rpc.Result.Meta[kyapaymcp.ReceiptMetaKey] == nil {
		t.Errorf("answer %s", b)
	}
	if iss.ChargeCount() != 1 {
		t.Errorf("%d charges", iss.ChargeCount())
	}
}
