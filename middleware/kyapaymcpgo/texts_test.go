package kyapaymcpgo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
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
// kyapaymcp shows for the same tools.
func TestToolTexts(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"install", "per-tool"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{perTool: mode == "per-tool", noInstall: mode == "per-tool"})
			c := e.connect(t)
			tools := listed(t, c)
			for _, tc := range []struct{ tool, desc, arg, line, info string }{
				{"quote", "A price quote.\n\n", quoteArgText, quoteLine, quoteInfo},
				{"whoami", "", whoamiArgText, whoamiLine, whoamiInfo},
			} {
				tl := tools[tc.tool]
				props, _ := schemaOf(t, tl)["properties"].(map[string]any)
				arg, _ := props[kyapaymcpgo.DefaultArgument].(map[string]any)
				if got := arg["description"]; got != tc.arg {
					t.Errorf("%s: argument description\n got %q\nwant %q", tc.tool, got, tc.arg)
				}
				if want := tc.desc + tc.line; tl.Description != want {
					t.Errorf("%s: description\n got %q\nwant %q", tc.tool, tl.Description, want)
				}
				if got, _ := json.Marshal(advertOf(t, tl)); string(got) != tc.info {
					t.Errorf("%s: _meta entry\n got %s\nwant %s", tc.tool, got, tc.info)
				}
			}
			res := e.call(t, c, "quote", call{})
			if got := text(res); !strings.HasSuffix(got, refusalSentence) {
				t.Errorf("refusal %q does not end with %q", got, refusalSentence)
			}
		})
	}
}

// The receipt in a charged result's _meta has exactly amountCharged and
// remainingBalance, as in kyapaymcp.
func TestReceiptShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("10"))
	res := e.call(t, c, "quote", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}})
	if got, _ := json.Marshal(res.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey]); string(got) != `{"amountCharged":"0.01","remainingBalance":"9.99"}` {
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
	twin, err := os.ReadFile("../kyapaymcp/common.go")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("kyapaymcp is not next to this module")
	}
	if err != nil {
		t.Fatal(err)
	}
	body := func(b []byte) []byte {
		_, rest, _ := bytes.Cut(b, []byte("\n"))
		return rest
	}
	if !bytes.Equal(body(mine), body(twin)) {
		t.Error("common.go differs from ../kyapaymcp/common.go beyond the package clause")
	}
}

// Config.MetaKey moves the _meta entry that carries the token; the
// default key is then an ordinary _meta entry, and refusals and tools/list
// name the configured key.
func TestCustomMetaKey(t *testing.T) {
	t.Parallel()
	const key = "example.com/token"
	e := newEnv(t, envOpts{cfg: func(c *kyapaymcpgo.Config) { c.MetaKey = key }})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("buyer-m"))
	call := func(k string) *mcp.CallToolResult {
		req := mcp.CallToolRequest{}
		req.Params.Name = "quote"
		req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{k: tok}}
		res, err := c.CallTool(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := call(key); res.IsError || text(res) != "quote ? for buyer-m" || e.Issuer.ChargeCount() != 1 {
		t.Errorf("token under %s: %v %q, ledger %d", key, res.IsError, text(res), e.Issuer.ChargeCount())
	}
	if d := detail(t, call(kyapaymcpgo.DefaultMetaKey)); d.Error != kyapay.CodeTokenMissing || d.MetaKey != key {
		t.Errorf("token under the default key: %+v", d)
	}
	quote := listed(t, c)["quote"]
	props, _ := schemaOf(t, quote)["properties"].(map[string]any)
	desc, _ := props[kyapaymcpgo.DefaultArgument].(map[string]any)["description"].(string)
	if advertOf(t, quote)["metaKey"] != key || !strings.HasSuffix(desc, `_meta["`+key+`"] instead.`) {
		t.Errorf("listed %v %q", advertOf(t, quote), desc)
	}
	if e.gate.MetaKey() != key || e.gate.Argument() != kyapaymcpgo.DefaultArgument {
		t.Errorf("MetaKey %q Argument %q", e.gate.MetaKey(), e.gate.Argument())
	}
}

// A ChargeBefore tool registered with its own requirement through Tool,
// on a server where the gate is also installed, is charged once for a
// multi-round call of a legacy client, as a tool of Config.Tools is: the
// installed hook recognises the tool and shares the first round's charge.
func TestPerToolChargeBeforeInstalledLegacyRounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{perTool: true})
	yes := &elicitYes{}
	c := e.connect(t, client.WithElicitationHandler(yes), client.WithLegacyProtocolOnly())
	res := e.call(t, c, "render", call{args: map[string]any{"ask": "yes", kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}})
	if res.IsError || text(res) != "rendered, paid 0.01" || e.rec.count("render") != 2 {
		t.Fatalf("got %v %q after %d rounds; want rendered after 2", res.IsError, text(res), e.rec.count("render"))
	}
	if n := e.Issuer.ChargeCount(); n != 1 {
		t.Errorf("ledger = %d; want 1", n)
	}
	if l := e.rec.leaks(); len(l) != 0 {
		t.Errorf("a round saw the token in %v", l)
	}
}
