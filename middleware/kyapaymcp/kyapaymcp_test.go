package kyapaymcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

const argSentence = ` Pass the token in the "skyfire-pay-id" argument of this tool.`

// tools/list shows every gated tool with the token argument and a ToolInfo,
// leaves free tools alone, and never changes the tools the SDK stores.
func TestToolsListDecorates(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			first, err := c.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]*mcp.Tool{}
			for _, tl := range first.Tools {
				byName[tl.Name] = tl
			}
			for _, tc := range []struct {
				tool  string
				words []string
				info  map[string]any
			}{
				{"quote", []string{"a pay or kya-pay token", `starts with "ey"`, "costs 0.01 USD", "charged only when the call succeeds",
					middleware.DefaultCreateTokenURL, "skyfire-pay-id HTTP header", `_meta["xyz.skyfire/pay-id"]`},
					map[string]any{"acceptedTokenTypes": []any{"pay", "kya-pay"}, "paid": true, "requiredAmount": "0.01",
						"currency": "USD", "charge": "after", "argument": "skyfire-pay-id", "header": "skyfire-pay-id",
						"metaKey": kyapaymcp.MetaKey, "createTokenUrl": middleware.DefaultCreateTokenURL}},
				{"before", []string{"costs 0.01 USD", "charged before the tool runs"},
					map[string]any{"charge": "before", "requiredAmount": "0.01"}},
				{"typed", []string{"costs 0.01 USD"}, map[string]any{"paid": true}},
				{"whoami", []string{"a kya or kya-pay token", "not charged", "identity fields: email"},
					map[string]any{"acceptedTokenTypes": []any{"kya", "kya-pay"}, "paid": false, "identityFields": []any{"email"}}},
			} {
				tl := byName[tc.tool]
				if tl == nil {
					t.Fatalf("%s not listed", tc.tool)
				}
				prop := property(t, tl, kyapaymcp.DefaultArgument)
				if prop["type"] != "string" {
					t.Errorf("%s: argument type %v", tc.tool, prop["type"])
				}
				desc, _ := prop["description"].(string)
				for _, w := range tc.words {
					if !strings.Contains(desc, w) {
						t.Errorf("%s: description %q lacks %q", tc.tool, desc, w)
					}
				}
				info, _ := tl.Meta[kyapaymcp.ToolMetaKey].(map[string]any)
				for k, want := range tc.info {
					if got := fmt.Sprint(info[k]); got != fmt.Sprint(want) {
						t.Errorf("%s: _meta %s = %v, want %v", tc.tool, k, got, want)
					}
				}
			}
			// The typed tool's inferred schema stays strict.
			if ap, _ := json.Marshal(schemaMap(t, byName["typed"])["additionalProperties"]); string(ap) != "false" {
				t.Errorf("typed: additionalProperties %s, want false", ap)
			}
			// The free tool is listed as registered.
			if echo := byName["echo"]; echo.Meta[kyapaymcp.ToolMetaKey] != nil || schemaMap(t, echo)["properties"] != nil {
				t.Errorf("echo decorated: %+v", echo)
			}
			// The stored tools are untouched, so a second list is the same.
			for name, tl := range h.tools {
				if s := tl.InputSchema.(*jsonschema.Schema); s.Properties[kyapaymcp.DefaultArgument] != nil || tl.Meta != nil {
					t.Errorf("stored tool %s was modified", name)
				}
			}
			second, err := c.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(first.Tools)
			b, _ := json.Marshal(second.Tools)
			if !bytes.Equal(a, b) {
				t.Errorf("second list differs:\n%s\n%s", a, b)
			}
			if n := h.seller.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
				t.Errorf("%d charge requests", n)
			}
		})
	}
}

func schemaMap(t *testing.T, tl *mcp.Tool) map[string]any {
	t.Helper()
	b, err := json.Marshal(tl.InputSchema)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func property(t *testing.T, tl *mcp.Tool, name string) map[string]any {
	t.Helper()
	props, _ := schemaMap(t, tl)["properties"].(map[string]any)
	p, ok := props[name].(map[string]any)
	if !ok {
		t.Fatalf("%s: no property %q in %v", tl.Name, name, props)
	}
	return p
}

// A paid call is charged exactly once whichever place carries the token,
// and the tool never sees the token.
func TestPaidCallTokenPlaces(t *testing.T) {
	for _, inst := range installs {
		for _, proto := range []string{protoNew, protoOld} {
			t.Run(inst.String()+"/"+proto, func(t *testing.T) {
				h := newHarness(t, harnessOpts{install: inst})
				c := h.connect(t, clientOpts{proto: proto})
				for _, place := range []string{"argument", "header", "meta", "meta-header-name"} {
					tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("agent-"+place))
					args := map[string]any{"symbol": "ACME"}
					var meta mcp.Meta
					c.setHeader("")
					switch place {
					case "argument":
						args[kyapaymcp.DefaultArgument] = tok
					case "header":
						c.setHeader(tok)
					case "meta":
						meta = mcp.Meta{kyapaymcp.MetaKey: tok, "trace": "t1"}
					case "meta-header-name":
						meta = mcp.Meta{kyapay.HeaderName: tok, "trace": "t1"}
					}
					res := c.call(t, "quote", args, meta)
					if res.IsError || resultText(res) != "quote for agent-"+place {
						t.Fatalf("%s: result %v %q", place, res.IsError, resultText(res))
					}
					if n := h.charges(tok); n != 1 {
						t.Errorf("%s: %d charges, want 1", place, n)
					}
					rc := receiptOf(t, res)
					if rc["amountCharged"] != "0.01" || rc["currency"] != "USD" || rc["remainingBalance"] != "9.99" {
						t.Errorf("%s: receipt %v", place, rc)
					}
					if got := h.rec.lastArgs("quote"); got != `{"symbol":"ACME"}` {
						t.Errorf("%s: tool saw arguments %s", place, got)
					}
					m := h.rec.lastMeta("quote")
					if _, ok := m[kyapaymcp.MetaKey]; ok {
						t.Errorf("%s: tool saw the _meta token", place)
					}
					if _, ok := m[kyapay.HeaderName]; ok {
						t.Errorf("%s: tool saw the _meta token", place)
					}
					if meta != nil && m["trace"] != "t1" {
						t.Errorf("%s: tool lost other _meta entries: %v", place, m)
					}
				}
				c.setHeader("")
				if n := h.seller.Issuer.ChargeCount(); n != 4 {
					t.Errorf("%d charges in all, want 4", n)
				}
			})
		}
	}
}

// The same token in two places is one token; two different tokens are
// refused with token_ambiguous before anything runs or is charged.
func TestTwoTokens(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.connect(t, clientOpts{})
	a := h.seller.Issuer.Mint(kyapay.TypePay)
	b := h.seller.Issuer.Mint(kyapay.TypePay)

	c.setHeader(a)
	res := c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: a}, mcp.Meta{kyapaymcp.MetaKey: a})
	if res.IsError || h.charges(a) != 1 {
		t.Fatalf("same token thrice: %v %q, %d charges", res.IsError, resultText(res), h.charges(a))
	}

	runs := h.rec.calls("quote")
	for _, tc := range []struct {
		name   string
		header string
		args   map[string]any
		meta   mcp.Meta
	}{
		{"header and argument", a, map[string]any{kyapaymcp.DefaultArgument: b}, nil},
		{"header and meta", a, nil, mcp.Meta{kyapaymcp.MetaKey: b}},
		{"meta and argument", "", map[string]any{kyapaymcp.DefaultArgument: b}, mcp.Meta{kyapaymcp.MetaKey: a}},
		{"two meta keys", "", nil, mcp.Meta{kyapaymcp.MetaKey: a, kyapay.HeaderName: b}},
	} {
		c.setHeader(tc.header)
		res := c.call(t, "quote", tc.args, tc.meta)
		if code := structured(t, res)["error"]; !res.IsError || code != string(kyapay.CodeTokenAmbiguous) {
			t.Errorf("%s: isError %v code %v", tc.name, res.IsError, code)
		}
		if txt := resultText(res); strings.Contains(txt, a) || strings.Contains(txt, b) {
			t.Errorf("%s: refusal quotes a token", tc.name)
		}
	}
	if h.rec.calls("quote") != runs || h.charges(a) != 1 || h.charges(b) != 0 {
		t.Errorf("ambiguous calls ran (%d runs) or charged (%d, %d)", h.rec.calls("quote")-runs, h.charges(a)-1, h.charges(b))
	}
}

// A call without a token gets the structured refusal, and the tool does
// not run.
func TestUnpaidCallRefused(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			res := c.call(t, "quote", map[string]any{"symbol": "ACME"}, nil)
			if !res.IsError {
				t.Fatal("not an error result")
			}
			if got, want := resultText(res), sellertest.SeedPay+argSentence; got != want {
				t.Errorf("text\n got %q\nwant %q", got, want)
			}
			sc := structured(t, res)
			want := map[string]any{
				"error": "token_missing", "message": sellertest.SeedPay + argSentence,
				"acceptedTokenTypes": []any{"pay", "kya-pay"}, "requiredAmount": "0.01", "currency": "USD",
				"header": "skyfire-pay-id", "argument": "skyfire-pay-id", "metaKey": kyapaymcp.MetaKey,
				"createTokenUrl": middleware.DefaultCreateTokenURL,
			}
			if fmt.Sprint(sc) != fmt.Sprint(want) {
				t.Errorf("structuredContent\n got %v\nwant %v", sc, want)
			}
			if n := h.rec.calls("quote"); n != 0 {
				t.Errorf("tool ran %d times", n)
			}

			// Identity tools refuse tokens without the identity they need.
			for _, tc := range []struct {
				tok  string
				code kyapay.Code
			}{
				{h.seller.Issuer.Mint(kyapay.TypePay), kyapay.CodeIdentityRequired},
				{h.seller.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Human(map[string]any{"verified": true})), kyapay.CodeIdentityFieldsMissing},
				{"not-a-token", kyapay.CodeTokenMalformed},
			} {
				res := c.call(t, "whoami", map[string]any{kyapaymcp.DefaultArgument: tc.tok}, nil)
				if code := structured(t, res)["error"]; !res.IsError || code != string(tc.code) {
					t.Errorf("whoami: isError %v code %v, want %s", res.IsError, code, tc.code)
				}
				if !strings.HasSuffix(resultText(res), argSentence) {
					t.Errorf("whoami %s: text %q does not name the argument", tc.code, resultText(res))
				}
			}
			if n := h.rec.calls("whoami"); n != 0 {
				t.Errorf("whoami ran %d times", n)
			}
			kya := h.seller.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Email("ada@example.com"))
			if res := c.call(t, "whoami", map[string]any{kyapaymcp.DefaultArgument: kya}, nil); res.IsError || resultText(res) != "ada@example.com" {
				t.Errorf("whoami with a kya token: %v %q", res.IsError, resultText(res))
			}
			if n := h.seller.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
				t.Errorf("%d charge requests", n)
			}
		})
	}
}

// A token argument that is not a string is refused as malformed; arguments
// that are not an object are a protocol error. Neither runs or charges.
func TestMalformedTokenPlaces(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.connect(t, clientOpts{})
	tok := h.seller.Issuer.Mint(kyapay.TypePay)
	for _, tc := range []struct {
		args map[string]any
		meta mcp.Meta
	}{
		{map[string]any{kyapaymcp.DefaultArgument: 42}, nil},
		{map[string]any{kyapaymcp.DefaultArgument: map[string]any{"token": tok}}, nil},
		{nil, mcp.Meta{kyapaymcp.MetaKey: []string{tok}}},
	} {
		res := c.call(t, "quote", tc.args, tc.meta)
		if code := structured(t, res)["error"]; !res.IsError || code != string(kyapay.CodeTokenMalformed) {
			t.Errorf("%v %v: isError %v code %v", tc.args, tc.meta, res.IsError, code)
		}
	}
	if _, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "quote", Arguments: []string{tok}}); err == nil ||
		!strings.Contains(err.Error(), "not a JSON object") || strings.Contains(err.Error(), tok) {
		t.Errorf("array arguments: %v", err)
	}
	// null arguments carry no token.
	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "quote", Arguments: json.RawMessage("null")})
	if err != nil || structured(t, res)["error"] != string(kyapay.CodeTokenMissing) {
		t.Errorf("null arguments: %v %v", err, res)
	}
	if h.rec.calls("quote") != 0 || h.seller.Issuer.ChargeCount() != 0 {
		t.Errorf("ran %d times, charged %d", h.rec.calls("quote"), h.seller.Issuer.ChargeCount())
	}
}

// A tool that fails (an isError result, a Go error, a typed handler's error
// or invalid input) delivers its failure and is not charged.
func TestFailedCallNotCharged(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			arg := func(tok string, kv ...any) map[string]any {
				m := map[string]any{kyapaymcp.DefaultArgument: tok}
				for i := 0; i < len(kv); i += 2 {
					m[kv[i].(string)] = kv[i+1]
				}
				return m
			}

			tok := h.seller.Issuer.Mint(kyapay.TypePay)
			res := c.call(t, "fail", arg(tok), nil)
			if !res.IsError || resultText(res) != "upstream unavailable" || receiptOf(t, res) != nil {
				t.Errorf("fail: %v %q %v", res.IsError, resultText(res), res.Meta)
			}
			if _, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "crash", Arguments: arg(tok)}); err == nil || !strings.Contains(err.Error(), "crashed") {
				t.Errorf("crash: %v", err)
			}
			res = c.call(t, "typed", arg(tok, "city", "nowhere"), nil)
			if !res.IsError || !strings.Contains(resultText(res), "unknown city") {
				t.Errorf("typed error: %v %q", res.IsError, resultText(res))
			}
			res = c.call(t, "typed", arg(tok, "city", 7), nil)
			if !res.IsError || !strings.Contains(resultText(res), "validating") {
				t.Errorf("typed invalid input: %v %q", res.IsError, resultText(res))
			}
			if h.rec.calls("fail") != 1 || h.rec.calls("crash") != 1 || h.rec.calls("typed") != 1 {
				t.Errorf("runs: fail %d crash %d typed %d", h.rec.calls("fail"), h.rec.calls("crash"), h.rec.calls("typed"))
			}
			if n := h.seller.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
				t.Errorf("%d charge requests, want 0", n)
			}
			// The same token then pays for a successful call.
			if res := c.call(t, "quote", arg(tok), nil); res.IsError || h.charges(tok) != 1 {
				t.Errorf("quote after failures: %v, %d charges", res.IsError, h.charges(tok))
			}
		})
	}
}

// When the charge after a successful tool is declined or its outcome is
// unknown, the output is withheld and the agent gets the refusal; the
// unknown outcome never says to pay again.
func TestChargeFailureWithholdsOutput(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			iss := h.seller.Issuer

			// Declined: the balance was spent by another seller.
			spent := h.seller.SpentElsewhere(t)
			before := iss.ChargeCount()
			res := c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: spent}, nil)
			if !res.IsError || strings.Contains(resultText(res), "quote for") || receiptOf(t, res) != nil {
				t.Fatalf("declined: output delivered: %v %q", res.IsError, resultText(res))
			}
			if got, want := resultText(res), sellertest.SeedDepleted+argSentence; got != want {
				t.Errorf("declined text\n got %q\nwant %q", got, want)
			}
			if structured(t, res)["error"] != string(kyapay.CodeTokenDepleted) || h.rec.calls("quote") != 1 || iss.ChargeCount() != before {
				t.Errorf("declined: %v, runs %d, charges %d", structured(t, res)["error"], h.rec.calls("quote"), iss.ChargeCount()-before)
			}

			// Unknown: Skyfire charged, then the connection dropped.
			tok := iss.Mint(kyapay.TypePay)
			iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, ChargeFirst: true, CloseConnection: true, Times: 1})
			res = c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: tok}, nil)
			txt := resultText(res)
			if !res.IsError || strings.Contains(txt, "quote for") || receiptOf(t, res) != nil {
				t.Fatalf("unknown: output delivered: %v %q", res.IsError, txt)
			}
			if structured(t, res)["error"] != string(kyapay.CodeChargeUnknown) {
				t.Errorf("unknown: code %v", structured(t, res)["error"])
			}
			if !strings.Contains(strings.ToLower(txt), "do not pay again") || strings.Contains(txt, "new pay token") || strings.Contains(txt, "Pass the token") {
				t.Errorf("unknown text %q", txt)
			}
			if h.charges(tok) != 1 || h.rec.calls("quote") != 2 {
				t.Errorf("unknown: ledger %d (the charge happened), runs %d", h.charges(tok), h.rec.calls("quote"))
			}
		})
	}
}

// initialize, server/discover, ping, tools/list and free tools work without
// any token, and never reach the charge API.
func TestProtocolMethodsNotGated(t *testing.T) {
	for _, inst := range installs {
		for _, proto := range []string{protoNew, protoOld} {
			t.Run(inst.String()+"/"+proto, func(t *testing.T) {
				h := newHarness(t, harnessOpts{install: inst, stateful: proto == protoOld})
				c := h.connect(t, clientOpts{proto: proto}) // initialize or server/discover
				if got := c.InitializeResult().ProtocolVersion; got != proto {
					t.Fatalf("negotiated %s", got)
				}
				if proto == protoOld {
					if err := c.Ping(t.Context(), nil); err != nil {
						t.Errorf("ping: %v", err)
					}
				}
				if res, err := c.ListTools(t.Context(), nil); err != nil || len(res.Tools) != 8 {
					t.Errorf("tools/list: %v", err)
				}
				// A free tool is not touched, even when it gets a token argument.
				args := map[string]any{"x": 1, kyapaymcp.DefaultArgument: "not-a-token"}
				res := c.call(t, "echo", args, nil)
				if res.IsError || resultText(res) != `{"skyfire-pay-id":"not-a-token","x":1}` {
					t.Errorf("echo: %v %q", res.IsError, resultText(res))
				}
				if n := h.seller.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
					t.Errorf("%d charge requests", n)
				}
			})
		}
	}
}

// A typed tool with a strict input schema accepts a call carrying the token
// as an argument, because the gate strips it before the SDK validates; the
// schema stays strict for any other extra argument. Without the gate the
// same call fails validation.
func TestTypedToolStrictSchema(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			tok := h.seller.Issuer.Mint(kyapay.TypePay)
			res := c.call(t, "typed", map[string]any{"city": "Paris", kyapaymcp.DefaultArgument: tok}, nil)
			if res.IsError || structured(t, res)["answer"] != "quote for Paris" {
				t.Fatalf("typed: %v %q", res.IsError, resultText(res))
			}
			if h.charges(tok) != 1 || receiptOf(t, res)["amountCharged"] != "0.01" {
				t.Errorf("typed: %d charges, receipt %v", h.charges(tok), receiptOf(t, res))
			}
			res = c.call(t, "typed", map[string]any{"city": "Paris", "extra": 1, kyapaymcp.DefaultArgument: tok}, nil)
			if !res.IsError || !strings.Contains(resultText(res), "extra") || h.charges(tok) != 1 {
				t.Errorf("extra argument: %v %q, %d charges", res.IsError, resultText(res), h.charges(tok))
			}
		})
	}

	// The control: the same typed tool without the gate rejects the token
	// argument.
	s := mcp.NewServer(&mcp.Implementation{Name: "plain", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "typed"}, func(ctx context.Context, req *mcp.CallToolRequest, in cityIn) (*mcp.CallToolResult, cityOut, error) {
		return nil, cityOut{Answer: in.City}, nil
	})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "typed", Arguments: map[string]any{"city": "Paris", kyapaymcp.DefaultArgument: "ey"}})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), kyapaymcp.DefaultArgument) {
		t.Errorf("ungated typed tool accepted the token argument: %v %v", err, res)
	}
}

// N concurrent paid calls against a token whose balance pays exactly for
// some of them: the ledger holds exactly one charge per paid result, and
// every other call got a clean refusal without the output.
func TestConcurrentCallsExactBalance(t *testing.T) {
	const n, affordable = 24, 5
	for _, tool := range []string{"quote", "before"} {
		t.Run(tool, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			c := h.connect(t, clientOpts{})
			tok := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.05"))
			var paid, refused atomic.Int32
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{kyapaymcp.DefaultArgument: tok}})
					switch {
					case err != nil:
						t.Error(err)
					case !res.IsError && receiptOf(t, res)["amountCharged"] == "0.01":
						paid.Add(1)
					case res.IsError && structured(t, res)["error"] == string(kyapay.CodeTokenDepleted) && !strings.Contains(resultText(res), "sub="):
						refused.Add(1)
					default:
						t.Errorf("unexpected result %v %q", res.IsError, resultText(res))
					}
				})
			}
			wg.Wait()
			ledger := h.charges(tok)
			if int(paid.Load()) != ledger || ledger != affordable || int(refused.Load()) != n-affordable {
				t.Errorf("paid %d, refused %d, ledger %d; want %d paid = ledger", paid.Load(), refused.Load(), ledger, affordable)
			}
			if bal, _ := h.seller.Issuer.Balance(kyapaytest.TokenID(tok)); !bal.IsZero() {
				t.Errorf("balance left %s", bal)
			}
		})
	}
}

// The handler reads the claims and, on a ChargeBefore tool, the receipt
// with the same accessors as an HTTP handler; the result carries the
// receipt either way.
func TestClaimsAndReceiptInHandler(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			c := h.connect(t, clientOpts{})
			tok := h.seller.Issuer.Mint(kyapay.TypeKYAPay, kyapaytest.Subject("agent-7"))
			res := c.call(t, "before", map[string]any{kyapaymcp.DefaultArgument: tok}, nil)
			if got := resultText(res); res.IsError || got != "sub=agent-7 receipt=true amount=0.01" {
				t.Errorf("before: %v %q", res.IsError, got)
			}
			if rc := receiptOf(t, res); rc["amountCharged"] != "0.01" || h.charges(tok) != 1 {
				t.Errorf("before: receipt %v, %d charges", rc, h.charges(tok))
			}
		})
	}
}

// In a stateful session the context is the initialize request's, so the
// header must be read per request: each call is charged to the token its
// own request carried.
func TestStatefulHeaderPerRequest(t *testing.T) {
	h := newHarness(t, harnessOpts{stateful: true})
	c := h.connect(t, clientOpts{proto: protoOld})
	a := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("agent-a"))
	b := h.seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("agent-b"))
	for _, tc := range []struct{ tok, want string }{{a, "agent-a"}, {b, "agent-b"}, {"", ""}} {
		c.setHeader(tc.tok)
		res := c.call(t, "quote", nil, nil)
		if tc.tok == "" {
			if !res.IsError || structured(t, res)["error"] != string(kyapay.CodeTokenMissing) {
				t.Errorf("no header: %v %q", res.IsError, resultText(res))
			}
			continue
		}
		if res.IsError || resultText(res) != "quote for "+tc.want {
			t.Errorf("%s: %v %q", tc.want, res.IsError, resultText(res))
		}
	}
	if h.charges(a) != 1 || h.charges(b) != 1 {
		t.Errorf("charges a %d b %d", h.charges(a), h.charges(b))
	}
}

// A tool that asks for input first (multi round-trip) is charged once, for
// its final result: with current clients each round is a tools/call of its
// own; with older ones the SDK re-invokes the tool inside the server.
func TestMultiRoundTripChargedOnce(t *testing.T) {
	for _, inst := range installs {
		for _, proto := range []string{protoNew, protoOld} {
			t.Run(inst.String()+"/"+proto, func(t *testing.T) {
				h := newHarness(t, harnessOpts{install: inst, stateful: proto == protoOld})
				var asked atomic.Int32
				c := h.connect(t, clientOpts{proto: proto, copts: &mcp.ClientOptions{
					ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
						asked.Add(1)
						return &mcp.ElicitResult{Action: "accept"}, nil
					},
				}})
				tok := h.seller.Issuer.Mint(kyapay.TypePay)
				res := c.call(t, "ask", map[string]any{kyapaymcp.DefaultArgument: tok}, nil)
				if res.IsError || resultText(res) != "answered" {
					t.Fatalf("ask: %v %q", res.IsError, resultText(res))
				}
				if h.rec.calls("ask") != 2 || asked.Load() != 1 {
					t.Errorf("tool ran %d times, client asked %d times", h.rec.calls("ask"), asked.Load())
				}
				if n := h.charges(tok); n != 1 {
					t.Errorf("%d charges, want 1", n)
				}
				if got := h.rec.lastArgs("ask"); got != "{}" {
					t.Errorf("last round saw arguments %s", got)
				}
			})
		}
	}
}

// A ContextPrice function prices the call by its arguments through
// RequestFromContext, which never holds the token.
func TestContextPrice(t *testing.T) {
	var sawToken atomic.Bool
	price := middleware.ContextPrice(func(ctx context.Context) (kyapay.Amount, error) {
		req, ok := kyapaymcp.RequestFromContext(ctx)
		if !ok {
			return kyapay.Amount{}, fmt.Errorf("no call")
		}
		if strings.Contains(string(req.Params.Arguments), kyapaymcp.DefaultArgument) {
			sawToken.Store(true)
		}
		var in struct{ Pages int64 }
		if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
			return kyapay.Amount{}, err
		}
		return kyapay.AmountFromMicros(in.Pages * 10_000)
	})
	h := newHarness(t, harnessOpts{cfg: kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{
		"quote": {Requirement: middleware.Pay(price)},
	}}})
	c := h.connect(t, clientOpts{})
	tok := h.seller.Issuer.Mint(kyapay.TypePay)
	res := c.call(t, "quote", map[string]any{"Pages": 3, kyapaymcp.DefaultArgument: tok}, nil)
	if res.IsError || receiptOf(t, res)["amountCharged"] != "0.03" {
		t.Fatalf("priced call: %v %q %v", res.IsError, resultText(res), res.Meta)
	}
	res = c.call(t, "quote", map[string]any{"Pages": 0, kyapaymcp.DefaultArgument: tok}, nil)
	if res.IsError || receiptOf(t, res) != nil {
		t.Errorf("free call: %v %v", res.IsError, res.Meta)
	}
	if sawToken.Load() || h.charges(tok) != 1 {
		t.Errorf("price function saw the token: %v; %d charges", sawToken.Load(), h.charges(tok))
	}
}

// Config.Argument renames the argument; the default name is then an
// ordinary argument of the tool.
func TestCustomArgument(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: kyapaymcp.Config{Argument: "pay_token", Tools: map[string]kyapaymcp.Requirement{"quote": reqQuote}}})
	c := h.connect(t, clientOpts{})
	list, err := c.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if tl.Name == "quote" {
			property(t, tl, "pay_token")
		}
	}
	tok := h.seller.Issuer.Mint(kyapay.TypePay)
	res := c.call(t, "quote", map[string]any{"pay_token": tok, kyapaymcp.DefaultArgument: "kept"}, nil)
	if res.IsError || h.charges(tok) != 1 || h.rec.lastArgs("quote") != `{"skyfire-pay-id":"kept"}` {
		t.Errorf("%v %q, %d charges, tool saw %s", res.IsError, resultText(res), h.charges(tok), h.rec.lastArgs("quote"))
	}
	res = c.call(t, "quote", nil, nil)
	if !strings.HasSuffix(resultText(res), ` Pass the token in the "pay_token" argument of this tool.`) || structured(t, res)["argument"] != "pay_token" {
		t.Errorf("refusal %q", resultText(res))
	}
}

// The token header is the Middleware's: the gate reads it, accepts it as a
// _meta key, and names it in tools/list and in refusals.
func TestMiddlewareHeader(t *testing.T) {
	const header = "X-Agent-Token"
	h := newHarness(t, harnessOpts{mwOpts: []func(*middleware.Config){func(c *middleware.Config) { c.Header = header }}})
	c := h.connect(t, clientOpts{header: header})
	list, err := c.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if tl.Name == "quote" {
			if desc := property(t, tl, kyapaymcp.DefaultArgument)["description"].(string); !strings.Contains(desc, header+" HTTP header") {
				t.Errorf("description %q", desc)
			}
		}
	}
	res := c.call(t, "quote", nil, nil)
	if sc := structured(t, res); sc["header"] != header || !strings.Contains(resultText(res), "in the "+header+" header") {
		t.Errorf("refusal %v %q", sc, resultText(res))
	}
	a := h.seller.Issuer.Mint(kyapay.TypePay)
	c.setHeader(a)
	if res := c.call(t, "quote", nil, nil); res.IsError || h.charges(a) != 1 {
		t.Errorf("header: %v %q", res.IsError, resultText(res))
	}
	c.setHeader("")
	b := h.seller.Issuer.Mint(kyapay.TypePay)
	if res := c.call(t, "quote", nil, mcp.Meta{header: b}); res.IsError || h.charges(b) != 1 || h.rec.lastMeta("quote")[header] != nil {
		t.Errorf("_meta under the header name: %v %q", res.IsError, resultText(res))
	}
}

// No token reaches a log: not the Middleware's (at Debug), not the SDK
// server's, whatever the outcome.
func TestTokenNeverLogged(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, harnessOpts{
		mwOpts:    []func(*middleware.Config){func(c *middleware.Config) { c.Logger = logger }},
		serverOpt: &mcp.ServerOptions{Logger: logger},
		stateful:  true,
	})
	c := h.connect(t, clientOpts{proto: protoOld})
	iss := h.seller.Issuer
	good := iss.Mint(kyapay.TypePay)
	expired := iss.Mint(kyapay.TypePay, kyapaytest.ExpiresIn(-time.Minute))
	other := iss.Mint(kyapay.TypePay)
	spent := h.seller.SpentElsewhere(t)
	for _, tok := range []string{good, expired, spent} {
		c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: tok}, nil)
		_, _ = c.CallTool(t.Context(), &mcp.CallToolParams{Name: "crash", Arguments: map[string]any{kyapaymcp.DefaultArgument: tok}})
		c.call(t, "typed", map[string]any{kyapaymcp.DefaultArgument: tok, "city": 1}, mcp.Meta{kyapaymcp.MetaKey: tok})
	}
	c.setHeader(good)
	c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: other}, nil)
	c.setHeader("")
	mu.Lock()
	defer mu.Unlock()
	logs := buf.String()
	if !strings.Contains(logs, "kyapay: refused") || !strings.Contains(logs, "kyapay: charged") {
		t.Fatalf("the logger saw nothing:\n%s", logs)
	}
	for _, tok := range []string{good, expired, other, spent} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(logs, sig) {
			t.Errorf("a token reached the log:\n%s", logs)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
