package kyapaymcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// The texts and shapes both MCP front ends (kyapaymcp and kyapaymcpgo)
// show: the same constants here pin both, so that they cannot drift apart.
const (
	// quoteArgText is the token argument's description for a pay tool of
	// 0.01 USD charged after success.
	quoteArgText = `Skyfire KYAPay token for this tool: a pay or kya-pay token, the JWT itself (it starts with "ey"), not its ID. Each call costs 0.01 USD, charged only when the call succeeds. Create one with Skyfire (https://docs.skyfire.xyz/reference/create-token; account at https://app.skyfire.xyz). Clients may send it in the skyfire-pay-id HTTP header or in _meta["xyz.skyfire/pay-id"] instead.`
	// quoteLine is the line added to that tool's description.
	quoteLine = `Paid tool: 0.01 USD per call, charged only when the call succeeds. Pass a Skyfire KYAPay token (pay or kya-pay) in the "skyfire-pay-id" argument.`
	// quoteInfo is that tool's _meta entry, keys sorted.
	quoteInfo = `{"acceptedTokenTypes":["pay","kya-pay"],"argument":"skyfire-pay-id","chargeTiming":"after","createTokenUrl":"https://docs.skyfire.xyz/reference/create-token","currency":"USD","header":"skyfire-pay-id","metaKey":"xyz.skyfire/pay-id","paid":true,"requiredAmount":"0.01"}`
	// whoamiArgText, whoamiLine and whoamiInfo are the same for an
	// identity tool that needs an email.
	whoamiArgText = `Skyfire KYAPay token for this tool: a kya or kya-pay token, the JWT itself (it starts with "ey"), not its ID. Calls are not charged. The token must carry these identity fields: email. Create one with Skyfire (https://docs.skyfire.xyz/reference/create-token; account at https://app.skyfire.xyz). Clients may send it in the skyfire-pay-id HTTP header or in _meta["xyz.skyfire/pay-id"] instead.`
	whoamiLine    = `Requires a Skyfire KYAPay token (kya or kya-pay) in the "skyfire-pay-id" argument. The token must carry these identity fields: email.`
	whoamiInfo    = `{"acceptedTokenTypes":["kya","kya-pay"],"argument":"skyfire-pay-id","createTokenUrl":"https://docs.skyfire.xyz/reference/create-token","header":"skyfire-pay-id","identityFields":["email"],"metaKey":"xyz.skyfire/pay-id","paid":false}`
	// refusalSentence follows the Middleware's text in a refusal a token
	// would cure.
	refusalSentence = ` Pass the token in the "skyfire-pay-id" argument of this tool.`
)

// tools/list shows, word for word, the texts and _meta entry that
// kyapaymcpgo shows for the same tools.
func TestToolTexts(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			list, err := c.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]*mcp.Tool{}
			for _, tl := range list.Tools {
				byName[tl.Name] = tl
			}
			for _, tc := range []struct{ tool, arg, line, info string }{
				{"quote", quoteArgText, quoteLine, quoteInfo},
				{"whoami", whoamiArgText, whoamiLine, whoamiInfo},
			} {
				tl := byName[tc.tool]
				if got := property(t, tl, kyapaymcp.DefaultArgument)["description"]; got != tc.arg {
					t.Errorf("%s: argument description\n got %q\nwant %q", tc.tool, got, tc.arg)
				}
				if want := "the " + tc.tool + " tool\n\n" + tc.line; tl.Description != want {
					t.Errorf("%s: description\n got %q\nwant %q", tc.tool, tl.Description, want)
				}
				if got, _ := json.Marshal(tl.Meta[kyapaymcp.ToolMetaKey]); string(got) != tc.info {
					t.Errorf("%s: _meta entry\n got %s\nwant %s", tc.tool, got, tc.info)
				}
			}
			res := c.call(t, "quote", nil, nil)
			if got := resultText(res); !strings.HasSuffix(got, refusalSentence) {
				t.Errorf("refusal %q does not end with %q", got, refusalSentence)
			}
		})
	}
}

// The receipt in a charged result's _meta has exactly amountCharged and
// remainingBalance, as in kyapaymcpgo.
func TestReceiptShape(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.connect(t, clientOpts{})
	res := c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: h.seller.Issuer.Mint(kyapay.TypePay)}, nil)
	if got, _ := json.Marshal(res.Meta[kyapaymcp.ReceiptMetaKey]); string(got) != `{"amountCharged":"0.01","remainingBalance":"9.99"}` {
		t.Errorf("receipt %s", got)
	}
}

// common.go is kept identical in both MCP modules but for the package
// clause; when both are at hand (a checkout of the repository), they must
// match.
func TestCommonFileMatchesTwin(t *testing.T) {
	mine, err := os.ReadFile("common.go")
	if err != nil {
		t.Fatal(err)
	}
	twin, err := os.ReadFile("../kyapaymcpgo/common.go")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("kyapaymcpgo is not next to this module")
	}
	if err != nil {
		t.Fatal(err)
	}
	body := func(b []byte) []byte {
		_, rest, _ := bytes.Cut(b, []byte("\n"))
		return rest
	}
	if !bytes.Equal(body(mine), body(twin)) {
		t.Error("common.go differs from ../kyapaymcpgo/common.go beyond the package clause")
	}
}

// Config.MetaKey moves the _meta entry that carries the token; the
// default key is then an ordinary _meta entry, and refusals and tools/list
// name the configured key.
func TestCustomMetaKey(t *testing.T) {
	const key = "example.com/token"
	h := newHarness(t, harnessOpts{cfg: kyapaymcp.Config{MetaKey: key, Tools: map[string]kyapaymcp.Requirement{"quote": reqQuote}}})
	c := h.connect(t, clientOpts{})
	tok := h.seller.Issuer.Mint(kyapay.TypePay)
	res := c.call(t, "quote", nil, mcp.Meta{key: tok})
	if res.IsError || h.charges(tok) != 1 || h.rec.lastMeta("quote")[key] != nil {
		t.Errorf("token under %s: %v %q, %d charges, tool saw %v", key, res.IsError, resultText(res), h.charges(tok), h.rec.lastMeta("quote"))
	}
	res = c.call(t, "quote", nil, mcp.Meta{kyapaymcp.DefaultMetaKey: tok})
	if sc := structured(t, res); !res.IsError || sc["error"] != string(kyapay.CodeTokenMissing) || sc["metaKey"] != key {
		t.Errorf("token under the default key: %v %v", res.IsError, sc)
	}
	list, err := c.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if tl.Name != "quote" {
			continue
		}
		info, _ := tl.Meta[kyapaymcp.ToolMetaKey].(map[string]any)
		desc, _ := property(t, tl, kyapaymcp.DefaultArgument)["description"].(string)
		if info["metaKey"] != key || !strings.HasSuffix(desc, `_meta["`+key+`"] instead.`) {
			t.Errorf("listed %v %q", info, desc)
		}
	}
	if h.gate.MetaKey() != key || h.gate.Argument() != kyapaymcp.DefaultArgument {
		t.Errorf("MetaKey %q Argument %q", h.gate.MetaKey(), h.gate.Argument())
	}
}

// MustAddTool registers what AddTool registers and panics where AddTool
// returns an error.
func TestMustAddTool(t *testing.T) {
	s := sellertest.New(t)
	g, err := kyapaymcp.New(s.Middleware, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{"listed": reqQuote}})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	raw := func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return text("ok"), nil }
	typed := func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, nil
	}
	obj := &jsonschema.Schema{Type: "object"}
	g.MustAddTool(server, &mcp.Tool{Name: "raw", InputSchema: obj}, reqQuote, raw)
	kyapaymcp.MustAddTool(server, g, &mcp.Tool{Name: "typed"}, reqWhoami, typed)
	for name, f := range map[string]func(){
		"raw":   func() { g.MustAddTool(server, &mcp.Tool{Name: "listed", InputSchema: obj}, reqQuote, raw) },
		"typed": func() { kyapaymcp.MustAddTool(server, g, &mcp.Tool{Name: "listed"}, reqQuote, typed) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(error).Error(), "already gated") {
					t.Errorf("%s: recovered %v", name, r)
				}
			}()
			f()
		}()
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	list, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(list.Tools) != 2 {
		t.Fatalf("listed %v %v", list, err)
	}
	for _, tl := range list.Tools {
		if tl.Meta[kyapaymcp.ToolMetaKey] == nil {
			t.Errorf("%s is not gated", tl.Name)
		}
	}
	if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "raw"}); err != nil || !res.IsError {
		t.Errorf("unpaid call to a MustAddTool tool: %v %v", res, err)
	}
}
