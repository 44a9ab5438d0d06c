package kyapaymcpgo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
)

func listed(t *testing.T, c *client.Client) map[string]mcp.Tool {
	t.Helper()
	res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]mcp.Tool{}
	for _, tl := range res.Tools {
		out[tl.Name] = tl
	}
	return out
}

// schemaOf returns the listed tool's input schema as JSON.
func schemaOf(t *testing.T, tl mcp.Tool) map[string]any {
	t.Helper()
	b, err := json.Marshal(tl)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		InputSchema map[string]any `json:"inputSchema"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.InputSchema
}

func advertOf(t *testing.T, tl mcp.Tool) map[string]any {
	t.Helper()
	if tl.Meta == nil {
		return nil
	}
	a, _ := tl.Meta.AdditionalFields[kyapaymcpgo.ToolMetaKey].(map[string]any)
	return a
}

func TestListToolsAdvertisesTokenArgumentAndPrice(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"install", "per-tool"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{perTool: mode == "per-tool", noInstall: mode == "per-tool"})
			c := e.connect(t)
			for round := range 2 { // a second list must not decorate twice
				tools := listed(t, c)
				quote := tools["quote"]
				props, _ := schemaOf(t, quote)["properties"].(map[string]any)
				arg, _ := props[kyapaymcpgo.DefaultArgument].(map[string]any)
				if arg["type"] != "string" {
					t.Fatalf("round %d: quote argument schema = %v; want a string property", round, arg)
				}
				desc, _ := arg["description"].(string)
				for _, want := range []string{"costs 0.01 USD", "charged only when the call succeeds", "pay or kya-pay",
					"https://docs.skyfire.xyz/reference/create-token", `"ey"`, "skyfire-pay-id HTTP header", `"xyz.skyfire/pay-id"`} {
					if !strings.Contains(desc, want) {
						t.Errorf("argument description lacks %q: %s", want, desc)
					}
				}
				if _, ok := props["symbol"]; !ok {
					t.Error("the tool's own property is gone")
				}
				if n := strings.Count(quote.Description, "Paid tool: 0.01 USD per call"); n != 1 || !strings.HasPrefix(quote.Description, "A price quote.") {
					t.Errorf("description = %q; want the seller's text and one price line", quote.Description)
				}
				a := advertOf(t, quote)
				if fmt.Sprint(a["acceptedTokenTypes"]) != "[pay kya-pay]" || a["requiredAmount"] != "0.01" || a["currency"] != "USD" ||
					a["paid"] != true || a["chargeTiming"] != "after" || a["argument"] != "skyfire-pay-id" ||
					a["header"] != "skyfire-pay-id" || a["metaKey"] != "xyz.skyfire/pay-id" {
					t.Errorf("quote _meta %s = %v", kyapaymcpgo.ToolMetaKey, a)
				}
				if a := advertOf(t, tools["render"]); a["chargeTiming"] != "before" {
					t.Errorf("render chargeTiming = %v; want before", a["chargeTiming"])
				}
				who := advertOf(t, tools["whoami"])
				if fmt.Sprint(who["acceptedTokenTypes"]) != "[kya kya-pay]" || who["paid"] != false ||
					fmt.Sprint(who["identityFields"]) != "[email]" || who["requiredAmount"] != nil {
					t.Errorf("whoami _meta = %v", who)
				}
				// A typed tool has a RawInputSchema, patched as JSON.
				typed := schemaOf(t, tools["typed"])
				if tp, _ := typed["properties"].(map[string]any); tp[kyapaymcpgo.DefaultArgument] == nil || tp["city"] == nil || typed["additionalProperties"] != false {
					t.Errorf("typed schema = %v; want city and the argument, additionalProperties false", typed)
				}
				echo := tools["echo"]
				if echo.Meta != nil && echo.Meta.AdditionalFields[kyapaymcpgo.ToolMetaKey] != nil {
					t.Error("free tool echo is advertised")
				}
				if _, ok := schemaOf(t, echo)["properties"].(map[string]any)[kyapaymcpgo.DefaultArgument]; ok {
					t.Error("free tool echo got the token argument")
				}
			}
			if mode == "install" {
				// The stored tools are untouched: tools/list decorated copies.
				stored := e.mcp.GetTool("quote").Tool
				if _, ok := stored.InputSchema.Properties[kyapaymcpgo.DefaultArgument]; ok || stored.Meta != nil || stored.Description != "A price quote." {
					t.Errorf("stored quote tool changed: %+v", stored)
				}
				if strings.Contains(string(e.mcp.GetTool("typed").Tool.RawInputSchema), kyapaymcpgo.DefaultArgument) {
					t.Error("stored raw schema changed")
				}
			}
		})
	}
}

func TestPaidCallChargedOnceWhereverTheTokenIs(t *testing.T) {
	t.Parallel()
	for _, place := range []string{"argument", "header", "meta", "meta-header-name"} {
		t.Run(place, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			c := e.connect(t)
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("buyer-1"), kyapaytest.Balance("0.05"))
			cl := call{args: map[string]any{"symbol": "ACME"}}
			switch place {
			case "argument":
				cl.args[kyapaymcpgo.DefaultArgument] = tok
			case "header":
				cl.header = tok
			case "meta":
				cl.meta = tok
			case "meta-header-name":
				cl.metaHeader = tok
			}
			res := e.call(t, c, "quote", cl)
			if res.IsError || text(res) != "quote ACME for buyer-1" {
				t.Fatalf("got isError=%v %q; want the quote", res.IsError, text(res))
			}
			r, ok := receipt(res)
			if !ok || len(r) != 2 || r["amountCharged"] != "0.01" || r["remainingBalance"] != "0.04" {
				t.Errorf("receipt = %v; want amountCharged 0.01, remainingBalance 0.04", r)
			}
			if n := e.Issuer.ChargeCount(); n != 1 {
				t.Errorf("ledger = %d charges; want 1", n)
			}
			if bal, _ := e.Issuer.Balance(kyapaytest.TokenID(tok)); bal.String() != "0.04" {
				t.Errorf("balance = %v; want 0.04", bal)
			}
			if l := e.rec.leaks(); len(l) != 0 {
				t.Errorf("the handler saw the token in %v", l)
			}
		})
	}
}

func TestTwoDifferentTokensAreAmbiguous(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	a, b := e.Issuer.Mint(kyapay.TypePay), e.Issuer.Mint(kyapay.TypePay)
	for name, cl := range map[string]call{
		"header and argument": {header: a, args: map[string]any{kyapaymcpgo.DefaultArgument: b}},
		"meta and argument":   {meta: a, args: map[string]any{kyapaymcpgo.DefaultArgument: b}},
		"header and meta":     {header: a, meta: b},
		"two meta keys":       {meta: a, metaHeader: b},
		"two header lines":    {headers: []string{a, a}},
	} {
		res := e.call(t, c, "quote", cl)
		if d := detail(t, res); !res.IsError || d.Error != kyapay.CodeTokenAmbiguous {
			t.Errorf("%s: isError=%v code %q; want token_ambiguous", name, res.IsError, d.Error)
		}
	}
	if e.rec.count("quote") != 0 || e.Issuer.ChargeCount() != 0 {
		t.Errorf("handler ran %d times, ledger %d; want 0 and 0", e.rec.count("quote"), e.Issuer.ChargeCount())
	}
	// The same token in two places is one token.
	res := e.call(t, c, "quote", call{header: a, meta: a, args: map[string]any{kyapaymcpgo.DefaultArgument: a}})
	if res.IsError || e.Issuer.ChargeCount() != 1 {
		t.Errorf("same token twice: isError=%v %q, ledger %d; want success and 1", res.IsError, text(res), e.Issuer.ChargeCount())
	}
	// A token argument that is not a string is malformed, not ignored.
	res = e.call(t, c, "quote", call{header: a, args: map[string]any{kyapaymcpgo.DefaultArgument: 42}})
	if d := detail(t, res); d.Error != kyapay.CodeTokenMalformed {
		t.Errorf("numeric argument: code %q; want token_malformed", d.Error)
	}
}

func TestFailedToolIsNotCharged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay)
	res := e.call(t, c, "fail", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}})
	if !res.IsError || text(res) != "upstream failed" {
		t.Errorf("fail: isError=%v %q; want the tool's own error result", res.IsError, text(res))
	}
	if _, ok := receipt(res); ok {
		t.Error("an uncharged result carries a receipt")
	}
	if _, err := e.callErr(c, "boom", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("boom: err = %v; want the handler's error", err)
	}
	if e.rec.count("fail") != 1 || e.rec.count("boom") != 1 {
		t.Errorf("handlers ran %d and %d times; want 1 and 1", e.rec.count("fail"), e.rec.count("boom"))
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
		t.Errorf("charge calls = %d; want 0", n)
	}
}

func TestChargeFailureWithholdsOutput(t *testing.T) {
	t.Parallel()
	t.Run("declined", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{})
		c := e.connect(t)
		res := e.call(t, c, "quote", call{args: map[string]any{"symbol": "SECRET", kyapaymcpgo.DefaultArgument: e.SpentElsewhere(t)}})
		d := detail(t, res)
		if !res.IsError || d.Error != kyapay.CodeTokenDepleted || strings.Contains(text(res), "SECRET") {
			t.Errorf("got isError=%v code %q %q; want token_depleted without the output", res.IsError, d.Error, text(res))
		}
		if e.rec.count("quote") != 1 {
			t.Errorf("handler ran %d times; want 1 (charge after)", e.rec.count("quote"))
		}
		if e.Issuer.ChargeCount() != 1 { // the one made elsewhere
			t.Errorf("ledger = %d; want only the charge made elsewhere", e.Issuer.ChargeCount())
		}
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{})
		c := e.connect(t)
		e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, ChargeFirst: true, CloseConnection: true})
		res := e.call(t, c, "quote", call{args: map[string]any{"symbol": "SECRET", kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}})
		d := detail(t, res)
		if !res.IsError || d.Error != kyapay.CodeChargeUnknown || strings.Contains(text(res), "SECRET") {
			t.Errorf("got isError=%v code %q %q; want charge_unknown without the output", res.IsError, d.Error, text(res))
		}
		if !strings.Contains(text(res), "not pay again") || strings.Contains(text(res), "Pass the token") {
			t.Errorf("charge_unknown text %q must say not to pay again, and not where to send a token", text(res))
		}
	})
}

func TestUnpaidCallGetsStructuredRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	res := e.call(t, c, "quote", call{args: map[string]any{"symbol": "X"}})
	d := detail(t, res)
	if !res.IsError || d.Error != kyapay.CodeTokenMissing || fmt.Sprint(d.AcceptedTokenTypes) != "[pay kya-pay]" ||
		d.RequiredAmount != "0.01" || d.Currency != "USD" || d.Argument != "skyfire-pay-id" || d.Header != "skyfire-pay-id" ||
		d.MetaKey != "xyz.skyfire/pay-id" || d.CreateTokenURL == "" {
		t.Errorf("refusal detail = %+v", d)
	}
	if txt := text(res); txt != d.Message || !strings.HasSuffix(txt, ` Pass the token in the "skyfire-pay-id" argument of this tool.`) ||
		!strings.Contains(txt, "The required amount is 0.01 USD") {
		t.Errorf("refusal text = %q", txt)
	}
	kya := e.call(t, c, "quote", call{args: map[string]any{kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypeKYA)}})
	if d := detail(t, kya); d.Error != kyapay.CodePayRequired {
		t.Errorf("kya token on a paid tool: %q; want pay_required", d.Error)
	}
	noEmail := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Human(map[string]any{"given_name": "Ada"}))
	who := e.call(t, c, "whoami", call{args: map[string]any{kyapaymcpgo.DefaultArgument: noEmail}})
	if d := detail(t, who); d.Error != kyapay.CodeIdentityFieldsMissing {
		t.Errorf("kya token without email: %q; want identity_fields_missing", d.Error)
	}
	if e.rec.count("quote")+e.rec.count("whoami") != 0 {
		t.Error("a handler ran for a refused call")
	}
}

func TestIdentityToolSeesClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Email("ada@example.com"))
	res := e.call(t, c, "whoami", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}})
	if res.IsError || text(res) != "ada@example.com" {
		t.Errorf("got %v %q; want the email", res.IsError, text(res))
	}
	if _, ok := receipt(res); ok || e.Issuer.Requests(kyapaytest.EndpointCharge) != 0 {
		t.Error("a free identity tool was charged")
	}
}

func TestProtocolMethodsNeedNoToken(t *testing.T) {
	t.Parallel()
	for _, era := range []string{"legacy", "modern"} {
		t.Run(era, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			var opts []client.ClientOption
			if era == "legacy" {
				opts = append(opts, client.WithLegacyProtocolOnly())
			}
			c := e.connect(t, opts...) // initialize (or discover) without a token
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("ping: %v", err)
			}
			if n := len(listed(t, c)); n != 8 {
				t.Errorf("tools/list has %d tools; want 8", n)
			}
			res := e.call(t, c, "echo", call{args: map[string]any{"text": "hi"}})
			if res.IsError || text(res) != "hi" {
				t.Errorf("free tool: %v %q", res.IsError, text(res))
			}
			if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
				t.Errorf("protocol methods made %d charge calls; want 0", n)
			}
		})
	}
}

func TestSchemaValidationSeesNoTokenArgument(t *testing.T) {
	t.Parallel()
	validating := []server.ServerOption{server.WithInputSchemaValidation(), server.WithStrictInputSchemaDefault()}
	for _, mode := range []string{"install", "per-tool"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{server: validating, perTool: mode == "per-tool", noInstall: mode == "per-tool"})
			c := e.connect(t)
			tok := e.Issuer.Mint(kyapay.TypePay)
			res := e.call(t, c, "typed", call{args: map[string]any{"city": "Oslo", kyapaymcpgo.DefaultArgument: tok}})
			if res.IsError || !strings.Contains(text(res), "sunny in Oslo") {
				t.Fatalf("typed: isError=%v %q; want the weather", res.IsError, text(res))
			}
			if e.Issuer.ChargeCount() != 1 {
				t.Errorf("ledger = %d; want 1", e.Issuer.ChargeCount())
			}
			// Validation still runs: a wrong argument fails it, uncharged.
			bad := e.call(t, c, "typed", call{args: map[string]any{"city": 7, kyapaymcpgo.DefaultArgument: tok}})
			if !bad.IsError || e.Issuer.ChargeCount() != 1 {
				t.Errorf("invalid arguments: isError=%v, ledger %d; want a validation error and no charge", bad.IsError, e.Issuer.ChargeCount())
			}
			if l := e.rec.leaks(); len(l) != 0 {
				t.Errorf("the handler saw the token in %v", l)
			}
		})
	}
	// Without the gate the same call fails validation: the argument must be
	// stripped (or declared) before mcp-go validates.
	t.Run("ungated", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{server: validating, noInstall: true})
		c := e.connect(t)
		res := e.call(t, c, "typed", call{args: map[string]any{"city": "Oslo", kyapaymcpgo.DefaultArgument: "x"}})
		if !res.IsError || e.rec.count("typed") != 0 {
			t.Errorf("ungated strict tool accepted the extra argument: %q", text(res))
		}
	})
}

func TestMultiRoundTripChargedOnce(t *testing.T) {
	t.Parallel()
	for _, era := range []string{"legacy", "modern"} {
		t.Run(era, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			yes := &elicitYes{}
			opts := []client.ClientOption{client.WithElicitationHandler(yes)}
			if era == "legacy" {
				opts = append(opts, client.WithLegacyProtocolOnly())
			}
			c := e.connect(t, opts...)
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.05"))
			res := e.call(t, c, "confirm", call{args: map[string]any{kyapaymcpgo.DefaultArgument: tok}})
			if res.IsError || text(res) != "confirmed" {
				t.Fatalf("got %v %q; want confirmed", res.IsError, text(res))
			}
			if e.rec.count("confirm") != 2 || yes.n.Load() != 1 {
				t.Errorf("handler rounds = %d, elicitations %d; want 2 and 1", e.rec.count("confirm"), yes.n.Load())
			}
			if n := e.Issuer.ChargeCount(); n != 1 {
				t.Errorf("ledger = %d; want 1 for one multi-round call", n)
			}
			if r, _ := receipt(res); r["amountCharged"] != "0.01" {
				t.Errorf("receipt = %v", r)
			}
			if l := e.rec.leaks(); len(l) != 0 {
				t.Errorf("a round saw the token in %v", l)
			}
		})
	}
	// A ChargeBefore tool pays in its first round; the rounds mcp-go runs
	// for a legacy client reuse that charge.
	t.Run("charge before, legacy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{})
		yes := &elicitYes{}
		c := e.connect(t, client.WithElicitationHandler(yes), client.WithLegacyProtocolOnly())
		res := e.call(t, c, "render", call{args: map[string]any{"ask": "yes", kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}})
		if res.IsError || text(res) != "rendered, paid 0.01" || e.rec.count("render") != 2 {
			t.Fatalf("got %v %q after %d rounds; want rendered after 2", res.IsError, text(res), e.rec.count("render"))
		}
		if n := e.Issuer.ChargeCount(); n != 1 {
			t.Errorf("ledger = %d; want 1", n)
		}
		if r, _ := receipt(res); r["amountCharged"] != "0.01" {
			t.Errorf("receipt = %v", r)
		}
	})
}

func TestChargeBeforeHandlerSeesReceipt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	res := e.call(t, c, "render", call{meta: e.Issuer.Mint(kyapay.TypePay)})
	if res.IsError || text(res) != "rendered, paid 0.01" {
		t.Fatalf("got %v %q", res.IsError, text(res))
	}
	if r, _ := receipt(res); r["amountCharged"] != "0.01" || e.Issuer.ChargeCount() != 1 {
		t.Errorf("receipt %v, ledger %d", r, e.Issuer.ChargeCount())
	}
	// Declined before the handler: it does not run.
	res = e.call(t, c, "render", call{meta: e.SpentElsewhere(t)})
	if d := detail(t, res); d.Error != kyapay.CodeTokenDepleted || e.rec.count("render") != 1 {
		t.Errorf("spent token: %q, handler runs %d; want token_depleted and 1", d.Error, e.rec.count("render"))
	}
}

func TestPerToolWrapperGatesOnce(t *testing.T) {
	t.Parallel()
	for _, install := range []bool{false, true} {
		t.Run(fmt.Sprint("install=", install), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{perTool: true, noInstall: !install})
			c := e.connect(t)
			if res := e.call(t, c, "quote", call{}); detail(t, res).Error != kyapay.CodeTokenMissing {
				t.Fatalf("unpaid call through the wrapper: %q", text(res))
			}
			res := e.call(t, c, "quote", call{args: map[string]any{kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}})
			if res.IsError || e.Issuer.ChargeCount() != 1 || e.Issuer.Requests(kyapaytest.EndpointCharge) != 1 {
				t.Errorf("got %v %q, ledger %d; want one charge", res.IsError, text(res), e.Issuer.ChargeCount())
			}
			if l := e.rec.leaks(); len(l) != 0 {
				t.Errorf("the handler saw the token in %v", l)
			}
		})
	}
}

func TestInstallTwiceGatesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{extraTools: func(s *server.MCPServer, g *kyapaymcpgo.Gate) { g.Install(s) }})
	c := e.connect(t)
	res := e.call(t, c, "quote", call{args: map[string]any{kyapaymcpgo.DefaultArgument: e.Issuer.Mint(kyapay.TypePay)}})
	if res.IsError || e.Issuer.ChargeCount() != 1 {
		t.Errorf("got %v %q, ledger %d; want one charge", res.IsError, text(res), e.Issuer.ChargeCount())
	}
	props, _ := schemaOf(t, listed(t, c)["quote"])["properties"].(map[string]any)
	if n := strings.Count(listed(t, c)["quote"].Description, "Paid tool"); n != 1 || props[kyapaymcpgo.DefaultArgument] == nil {
		t.Errorf("decorated %d times", n)
	}
}

func TestContextPriceReadsTheCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cfg: func(c *kyapaymcpgo.Config) {
		c.Tools["quote"] = kyapaymcpgo.Requirement{Requirement: middleware.Pay(middleware.ContextPrice(func(ctx context.Context) (kyapay.Amount, error) {
			req, ok := kyapaymcpgo.RequestFromContext(ctx)
			if !ok {
				return kyapay.Amount{}, fmt.Errorf("no call")
			}
			if _, leaked := req.GetArguments()[kyapaymcpgo.DefaultArgument]; leaked {
				return kyapay.Amount{}, fmt.Errorf("price function saw the token")
			}
			if req.GetString("symbol", "") == "BIG" {
				return kyapay.MustParseAmount("0.05"), nil
			}
			return kyapay.MustParseAmount("0.01"), nil
		}))}
	}})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	res := e.call(t, c, "quote", call{args: map[string]any{"symbol": "BIG", kyapaymcpgo.DefaultArgument: tok}})
	if r, _ := receipt(res); res.IsError || r["amountCharged"] != "0.05" {
		t.Errorf("got %v %q receipt %v; want 0.05 charged", res.IsError, text(res), r)
	}
	if a := advertOf(t, listed(t, c)["quote"]); a["paid"] != true || a["requiredAmount"] != nil {
		t.Errorf("_meta entry = %v; want paid without a fixed price", a)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	pay := reqPay
	tools := func(r kyapaymcpgo.Requirement) map[string]kyapaymcpgo.Requirement {
		return map[string]kyapaymcpgo.Requirement{"a": r}
	}
	// New reports what mcpgate.New reports, which mcpgate's tests cover.
	if _, err := kyapaymcpgo.New(nil, kyapaymcpgo.Config{Tools: tools(pay)}); err == nil || !strings.Contains(err.Error(), "nil *middleware.Middleware") {
		t.Errorf("New without a Middleware: %v", err)
	}
	if _, err := kyapaymcpgo.New(e.Middleware, kyapaymcpgo.Config{Tools: tools(kyapaymcpgo.Requirement{Requirement: middleware.Identity(), ChargeBefore: true})}); err == nil ||
		!strings.Contains(err.Error(), "without a price") {
		t.Errorf("New with ChargeBefore on a free tool: %v", err)
	}

	g, err := kyapaymcpgo.New(e.Middleware, kyapaymcpgo.Config{Tools: tools(pay)})
	if err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil }
	th := func(context.Context, mcp.CallToolRequest) (*mcp.CreateTaskResult, error) { return nil, nil }
	own := mcp.NewTool("own", mcp.WithString(kyapaymcpgo.DefaultArgument))
	for _, tc := range []struct {
		name string
		tool func() error
		task func() error
		want string
	}{
		{"listed", func() error { _, err := g.Tool(mcp.NewTool("a"), pay, h); return err },
			func() error { _, err := g.TaskTool(mcp.NewTool("a"), pay, th); return err }, "already gated by Config.Tools"},
		{"raw not object", func() error {
			_, err := g.Tool(mcp.NewToolWithRawSchema("r", "", json.RawMessage(`[]`)), pay, h)
			return err
		},
			func() error {
				_, err := g.TaskTool(mcp.NewToolWithRawSchema("r", "", json.RawMessage(`[]`)), pay, th)
				return err
			}, "not a JSON object"},
		{"own argument", func() error { _, err := g.Tool(own, pay, h); return err },
			func() error { _, err := g.TaskTool(own, pay, th); return err }, "has an argument"},
		{"own raw argument", func() error {
			_, err := g.Tool(mcp.NewToolWithRawSchema("r", "", json.RawMessage(`{"type":"object","properties":{"skyfire-pay-id":{}}}`)), pay, h)
			return err
		}, nil, "has an argument"},
		{"nil handler", func() error { _, err := g.Tool(mcp.NewTool("b"), pay, nil); return err },
			func() error { _, err := g.TaskTool(mcp.NewTool("b"), pay, nil); return err }, "nil tool handler"},
		{"bad requirement", func() error {
			_, err := g.Tool(mcp.NewTool("b"), kyapaymcpgo.Requirement{ChargeBefore: true}, h)
			return err
		},
			func() error {
				_, err := g.TaskTool(mcp.NewTool("b"), kyapaymcpgo.Requirement{Requirement: middleware.Identity("shoe_size")}, th)
				return err
			}, "tool \"b\""},
	} {
		for kind, f := range map[string]func() error{"Tool": tc.tool, "TaskTool": tc.task} {
			if f == nil {
				continue
			}
			if err := f(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: error %v, want %q", kind, tc.name, err, tc.want)
			}
		}
	}
	for name, f := range map[string]func(){
		"MustTool":     func() { g.MustTool(mcp.NewTool("a"), pay, h) },
		"MustTaskTool": func() { g.MustTaskTool(mcp.NewTool("a"), pay, th) },
	} {
		func() {
			defer func() {
				if r, _ := recover().(error); r == nil || !strings.Contains(r.Error(), "already gated") {
					t.Errorf("%s: recovered %v", name, r)
				}
			}()
			f()
		}()
	}
	if st := g.MustTool(mcp.NewTool("b"), pay, h); st.Tool.Name != "b" || st.Handler == nil {
		t.Errorf("MustTool = %+v", st)
	}
	if st := g.MustTaskTool(mcp.NewTool("c"), pay, th); st.Tool.Name != "c" || st.Handler == nil {
		t.Errorf("MustTaskTool = %+v", st)
	}
}

func TestConcurrentPaidCallsMatchTheLedger(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.connect(t)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.05"))
	const n = 24
	var paid, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sym := fmt.Sprint("S", i)
			res, err := e.callErr(c, "quote", call{args: map[string]any{"symbol": sym, kyapaymcpgo.DefaultArgument: tok}})
			if err != nil {
				t.Error(err)
				return
			}
			switch d := detail(t, res); {
			case !res.IsError && strings.HasPrefix(text(res), "quote "+sym+" "):
				if r, _ := receipt(res); r["amountCharged"] != "0.01" {
					t.Errorf("paid result without receipt: %v", r)
				}
				paid.Add(1)
			case res.IsError && (d.Error == kyapay.CodeTokenDepleted) && !strings.Contains(text(res), "quote "):
				refused.Add(1)
			default:
				t.Errorf("unexpected answer isError=%v %q", res.IsError, text(res))
			}
		})
	}
	wg.Wait()
	if got := e.Issuer.ChargeCount(); got != int(paid.Load()) || got != 5 || int(paid.Load()+refused.Load()) != n {
		t.Errorf("ledger %d, paid results %d, refused %d of %d; want ledger == paid == 5", got, paid.Load(), refused.Load(), n)
	}
}
