package mcpgate_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

var (
	reqQuote  = mcpgate.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.01"))}
	reqBefore = mcpgate.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.25")), ChargeBefore: true}
	reqWhoami = mcpgate.Requirement{Requirement: middleware.Identity("email")}
)

// The texts and shapes every MCP front end shows, word for word.
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
	// renderLine is the description line of a tool charged 0.25 USD before
	// it runs.
	renderLine = `Paid tool: 0.25 USD per call, charged before the tool runs. Pass a Skyfire KYAPay token (pay or kya-pay) in the "skyfire-pay-id" argument.`
	// refusalSentence follows the Middleware's text in a refusal a token
	// would cure.
	refusalSentence = ` Pass the token in the "skyfire-pay-id" argument of this tool.`
)

func newGate(t testing.TB, cfg mcpgate.Config) (*mcpgate.Gate, *sellertest.Seller) {
	t.Helper()
	s := sellertest.New(t)
	if cfg.Tools == nil {
		cfg.Tools = map[string]mcpgate.Requirement{"quote": reqQuote, "whoami": reqWhoami, "render": reqBefore}
	}
	g, err := mcpgate.New(s.Middleware, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, s
}

// The argument description, the description line and the _meta entry of
// a gated tool, word for word.
func TestToolTexts(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	for _, tc := range []struct{ tool, arg, line, info string }{
		{"quote", quoteArgText, quoteLine, quoteInfo},
		{"whoami", whoamiArgText, whoamiLine, whoamiInfo},
	} {
		tl := g.Tool(tc.tool)
		if got := tl.ArgumentDescription(); got != tc.arg {
			t.Errorf("%s: argument description\n got %q\nwant %q", tc.tool, got, tc.arg)
		}
		if got := tl.DecorateDescription(""); got != tc.line {
			t.Errorf("%s: description line\n got %q\nwant %q", tc.tool, got, tc.line)
		}
		if got, want := tl.DecorateDescription("the tool"), "the tool\n\n"+tc.line; got != want {
			t.Errorf("%s: description\n got %q\nwant %q", tc.tool, got, want)
		}
		// json.Marshal sorts map keys: the entry as a client decodes it.
		var m map[string]any
		b, _ := json.Marshal(tl.Info())
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(m); string(got) != tc.info {
			t.Errorf("%s: _meta entry\n got %s\nwant %s", tc.tool, got, tc.info)
		}
	}
	if got := g.Tool("render").DecorateDescription(""); got != renderLine {
		t.Errorf("render: description line\n got %q\nwant %q", got, renderLine)
	}
	if g.Tool("nope") != nil || g.Tool("quote").Name() != "quote" || !g.Tool("render").ChargeBefore() || g.Tool("quote").ChargeBefore() {
		t.Error("Tool, Name or ChargeBefore")
	}
}

// A price set per call is advertised without an amount; a custom argument
// and _meta key are named wherever the texts name them.
func TestToolTextsPerCallPriceAndNames(t *testing.T) {
	t.Parallel()
	perCall := mcpgate.Requirement{Requirement: middleware.Pay(middleware.ContextPrice(func(context.Context) (kyapay.Amount, error) {
		return kyapay.MustParseAmount("1"), nil
	}))}
	g, _ := newGate(t, mcpgate.Config{Argument: "token", MetaKey: "example.com/token", Tools: map[string]mcpgate.Requirement{"p": perCall}})
	tl := g.Tool("p")
	if i := tl.Info(); i.RequiredAmount != "" || i.Currency != "" || !i.Paid || i.Argument != "token" || i.MetaKey != "example.com/token" {
		t.Errorf("info %+v", i)
	}
	if d := tl.ArgumentDescription(); !strings.Contains(d, "Each call has a price set per call, charged only when the call succeeds.") ||
		!strings.HasSuffix(d, `_meta["example.com/token"] instead.`) {
		t.Errorf("argument description %q", d)
	}
	if l := tl.DecorateDescription(""); !strings.HasPrefix(l, "Paid tool: priced per call,") || !strings.HasSuffix(l, `in the "token" argument.`) {
		t.Errorf("line %q", l)
	}
	if g.Argument() != "token" || g.MetaKey() != "example.com/token" {
		t.Errorf("Argument %q MetaKey %q", g.Argument(), g.MetaKey())
	}
}

// A refusal a token would cure says where to put it; one that must not be
// paid again does not. The detail names the argument and the _meta key.
func TestRefusalDetail(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	_, err := g.Authorize(t.Context(), g.Tool("quote"), middleware.Input{})
	d := g.RefusalDetail(err)
	if d.Error != kyapay.CodeTokenMissing || !strings.HasSuffix(d.Message, refusalSentence) ||
		d.Argument != mcpgate.DefaultArgument || d.MetaKey != mcpgate.DefaultMetaKey {
		t.Errorf("missing token: %+v", d)
	}
	d = g.RefusalDetail(kyapay.NewError(kyapay.CodeChargeUnknown, "", errors.New("timeout")))
	if d.Error != kyapay.CodeChargeUnknown || strings.Contains(d.Message, refusalSentence) {
		t.Errorf("unknown charge: %+v", d)
	}
}

// The receipt has exactly amountCharged and remainingBalance, the latter
// only when Skyfire reported it; ReceiptMeta adds it to a copy.
func TestReceiptShape(t *testing.T) {
	t.Parallel()
	rc := charge.Receipt{AmountCharged: kyapay.MustParseAmount("0.01"), RemainingBalance: kyapay.MustParseAmount("9.99"), HasRemainingBalance: true}
	if got, _ := json.Marshal(mcpgate.NewReceipt(rc)); string(got) != `{"amountCharged":"0.01","remainingBalance":"9.99"}` {
		t.Errorf("receipt %s", got)
	}
	rc.HasRemainingBalance = false
	if got, _ := json.Marshal(mcpgate.NewReceipt(rc)); string(got) != `{"amountCharged":"0.01"}` {
		t.Errorf("receipt without balance %s", got)
	}
	meta := map[string]any{"a": 1}
	out := mcpgate.ReceiptMeta(meta, rc)
	if len(meta) != 1 || len(out) != 2 || out["a"] != 1 || out[mcpgate.ReceiptMetaKey].(*mcpgate.Receipt).AmountCharged.String() != "0.01" {
		t.Errorf("ReceiptMeta: %v from %v", out, meta)
	}
	if out := mcpgate.ReceiptMeta(nil, rc); len(out) != 1 {
		t.Errorf("ReceiptMeta(nil) = %v", out)
	}
}

// New reports every invalid configuration.
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	s := sellertest.New(t)
	m := s.Middleware
	noCharger, err := middleware.New(middleware.Config{Verifier: s.Verifier})
	if err != nil {
		t.Fatal(err)
	}
	priceFunc := mcpgate.Requirement{Requirement: middleware.Pay(middleware.PriceFunc(func(*http.Request) (kyapay.Amount, error) {
		return kyapay.MustParseAmount("0.01"), nil
	}))}
	after := reqQuote
	after.Timing = middleware.ChargeAfter
	bothTimings := after
	bothTimings.ChargeBefore = true
	tools := func(r mcpgate.Requirement) map[string]mcpgate.Requirement {
		return map[string]mcpgate.Requirement{"q": r}
	}
	for _, tc := range []struct {
		name string
		m    *middleware.Middleware
		cfg  mcpgate.Config
		want string
	}{
		{"nil middleware", nil, mcpgate.Config{}, "nil *middleware.Middleware"},
		{"argument name", m, mcpgate.Config{Argument: "pay id"}, "invalid argument name"},
		{"long argument name", m, mcpgate.Config{Argument: strings.Repeat("a", 129)}, "invalid argument name"},
		{"slash in argument", m, mcpgate.Config{Argument: "a/b"}, "invalid argument name"},
		{"meta key", m, mcpgate.Config{MetaKey: "pay id"}, "invalid _meta key"},
		{"PriceFunc", m, mcpgate.Config{Tools: tools(priceFunc)}, "use middleware.ContextPrice"},
		{"both timings", m, mcpgate.Config{Tools: tools(bothTimings)}, "ChargeBefore set with Timing"},
		{"zero price", m, mcpgate.Config{Tools: tools(mcpgate.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0"))})}, "greater than zero"},
		{"invalid price", m, mcpgate.Config{Tools: tools(mcpgate.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("x"))})}, "invalid fixed price"},
		{"unknown field", m, mcpgate.Config{Tools: tools(mcpgate.Requirement{Requirement: middleware.Identity("shoe_size")})}, "unknown identity field"},
		{"empty name", m, mcpgate.Config{Tools: map[string]mcpgate.Requirement{"": reqQuote}}, "empty tool name"},
		{"before, no price", m, mcpgate.Config{Tools: tools(mcpgate.Requirement{Requirement: middleware.Identity("email"), ChargeBefore: true})}, "ChargeBefore set on a tool without a price"},
		{"price without charger", noCharger, mcpgate.Config{Tools: tools(reqQuote)}, "Charger"},
		{"service without charger", noCharger, mcpgate.Config{Tools: tools(mcpgate.Requirement{Requirement: middleware.Pay(middleware.ServicePrice())})}, "Charger"},
	} {
		if _, err := mcpgate.New(tc.m, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := mcpgate.New(m, mcpgate.Config{Tools: tools(after)}); err != nil {
		t.Errorf("an explicit ChargeAfter timing: %v", err)
	}
	if _, err := mcpgate.New(m, mcpgate.Config{Argument: "a.b_c-1", MetaKey: "x.y/z"}); err != nil {
		t.Errorf("valid names: %v", err)
	}
}

// Compile refuses a listed tool and an input schema that declares the
// token argument, in any form a front end holds it.
func TestCompile(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	type own struct {
		Token string `json:"skyfire-pay-id"`
	}
	for _, tc := range []struct {
		name   string
		tool   string
		req    mcpgate.Requirement
		schema any
		want   string
	}{
		{"listed", "quote", reqQuote, nil, "already gated by Config.Tools"},
		{"raw", "t", reqQuote, json.RawMessage(`{"type":"object","properties":{"skyfire-pay-id":{}}}`), "has an argument"},
		{"escaped raw", "t", reqQuote, json.RawMessage(`{"properties":{"skyfire\u002dpay-id":{}}}`), "has an argument"},
		{"map", "t", reqQuote, map[string]any{"properties": map[string]any{"skyfire-pay-id": true}}, "has an argument"},
		{"struct", "t", reqQuote, struct {
			Properties map[string]own `json:"properties"`
		}{map[string]own{"skyfire-pay-id": {}}}, "has an argument"},
		{"requirement", "t", mcpgate.Requirement{ChargeBefore: true}, nil, `tool "t": ChargeBefore set on a tool without a price`},
	} {
		if _, err := g.Compile(tc.tool, tc.req, tc.schema); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Compile error %v, want %q", tc.name, err, tc.want)
		}
	}
	for name, schema := range map[string]any{
		"none":          nil,
		"other":         json.RawMessage(`{"type":"object","properties":{"a":{}}}`),
		"not an object": json.RawMessage(`[]`),
		"null props":    map[string]any{"properties": nil},
	} {
		tl, err := g.Compile("t", reqBefore, schema)
		if err != nil || tl.Name() != "t" || !tl.ChargeBefore() || tl.DecorateDescription("") != renderLine {
			t.Errorf("%s: Compile = %v, %v", name, tl, err)
		}
	}
}

// ToolFromMeta finds the tool of a _meta that DecorateMeta made, for this
// gate only; DecorateMeta leaves the tool's own _meta alone.
func TestToolFromMeta(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	other, _ := newGate(t, mcpgate.Config{})
	own := map[string]any{"x": 1}
	meta := g.Tool("quote").DecorateMeta(own)
	if len(own) != 1 || meta["x"] != 1 || meta[mcpgate.ToolMetaKey] != g.Tool("quote").Info() {
		t.Errorf("DecorateMeta: %v from %v", meta, own)
	}
	if g.ToolFromMeta(meta) != g.Tool("quote") {
		t.Error("the decorated _meta does not name its tool")
	}
	tl, err := g.Compile("solo", reqQuote, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.ToolFromMeta(tl.DecorateMeta(nil)) != tl {
		t.Error("a compiled tool is not found")
	}
	// A ToolInfo decoded from JSON, or made by another gate, names no tool.
	var decoded mcpgate.ToolInfo
	b, _ := json.Marshal(g.Tool("quote").Info())
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]map[string]any{
		"other gate": other.Tool("quote").DecorateMeta(nil),
		"decoded":    {mcpgate.ToolMetaKey: &decoded},
		"value":      {mcpgate.ToolMetaKey: decoded},
		"nil":        nil,
	} {
		if g.ToolFromMeta(m) != nil {
			t.Errorf("%s: found a tool", name)
		}
	}
}

// MetaWithoutToken removes the token entries and the named keys, copying
// only when it has to.
func TestMetaWithoutToken(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	meta := map[string]any{mcpgate.DefaultMetaKey: "t", kyapay.HeaderName: "t", "state": 1, "keep": 2}
	orig := maps.Clone(meta)
	if got := g.MetaWithoutToken(meta, "state"); len(got) != 1 || got["keep"] != 2 || !maps.Equal(meta, orig) {
		t.Errorf("got %v; meta now %v", got, meta)
	}
	if got := g.MetaWithoutToken(meta); len(got) != 2 || got["state"] != 1 {
		t.Errorf("without extra keys: %v", got)
	}
	if got := g.MetaWithoutToken(map[string]any{mcpgate.DefaultMetaKey: "t"}); got != nil {
		t.Errorf("emptied _meta = %v, want nil", got)
	}
	plain := map[string]any{"keep": 2}
	plain2 := g.MetaWithoutToken(plain)
	plain2["probe"] = true // the same map, not a copy
	if plain["probe"] != true {
		t.Error("a _meta without token entries was copied")
	}
}

// DecorateSchema adds the argument to a copy of the schema, replacing any
// property of that name, keeping the other members' bytes.
func TestDecorateSchema(t *testing.T) {
	t.Parallel()
	g, _ := newGate(t, mcpgate.Config{})
	tl := g.Tool("quote")
	prop := `{"description":` + mustJSON(quoteArgText) + `,"type":"string"}`
	raw := json.RawMessage(`{"type":"object","properties":{"skyfire-pay-id":{"type":"integer"},"n":{"maximum":12345678901234567890}}}`)
	for name, tc := range map[string]struct {
		in   any
		want string
	}{
		"raw, replaces":  {raw, `{"properties":{"n":{"maximum":12345678901234567890},"skyfire-pay-id":` + prop + `},"type":"object"}`},
		"no properties":  {json.RawMessage(`{"type":"object"}`), `{"properties":{"skyfire-pay-id":` + prop + `},"type":"object"}`},
		"null props":     {json.RawMessage(`{"properties":null}`), `{"properties":{"skyfire-pay-id":` + prop + `}}`},
		"map":            {map[string]any{"type": "object", "required": []string{"a"}}, `{"properties":{"skyfire-pay-id":` + prop + `},"required":["a"],"type":"object"}`},
		"not an object":  {json.RawMessage(`true`), "input schema is not a JSON object"},
		"nil":            {nil, "input schema is not a JSON object"},
		"bad properties": {json.RawMessage(`{"properties":[]}`), `"properties" is not a JSON object`},
	} {
		got, err := tl.DecorateSchema(tc.in)
		if err != nil {
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `tool "quote"`) {
				t.Errorf("%s: error %v, want %q", name, err, tc.want)
			}
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, tc.want)
		}
	}
	if string(raw) != `{"type":"object","properties":{"skyfire-pay-id":{"type":"integer"},"n":{"maximum":12345678901234567890}}}` {
		t.Errorf("the original schema changed: %s", raw)
	}
}

// FuzzDecorateSchema: a raw schema either gets the property, with every
// other member's value kept, or is reported as not an object; it never
// panics.
func FuzzDecorateSchema(f *testing.F) {
	f.Add([]byte(`{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}`))
	f.Add([]byte(`{"type":"object"}`))
	f.Add([]byte(`{"properties":null}`))
	f.Add([]byte(`{"properties":[]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	g, _ := newGate(f, mcpgate.Config{})
	tl := g.Tool("quote")
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := tl.DecorateSchema(json.RawMessage(raw))
		var in map[string]json.RawMessage
		inErr := json.Unmarshal(raw, &in)
		if err != nil {
			if inErr == nil && in != nil && !strings.Contains(err.Error(), `"properties"`) {
				t.Fatalf("refused the object %s: %v", raw, err)
			}
			return
		}
		if inErr != nil || in == nil {
			t.Fatalf("accepted a non-object %s", raw)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("output is not an object: %s", out)
		}
		var props map[string]json.RawMessage
		if err := json.Unmarshal(obj["properties"], &props); err != nil || props[mcpgate.DefaultArgument] == nil {
			t.Fatalf("no property in %s", out)
		}
		var prop struct{ Type, Description string }
		if json.Unmarshal(props[mcpgate.DefaultArgument], &prop) != nil || prop.Type != "string" || prop.Description != quoteArgText {
			t.Fatalf("property %s", props[mcpgate.DefaultArgument])
		}
		for k, v := range in {
			if k != "properties" && !jsonEqual(obj[k], v) {
				t.Fatalf("member %q is %s, want %s", k, obj[k], v)
			}
		}
	})
}

// Authorize gates a call of a tool with its requirement, and refuses a
// tool that is not the gate's own with internal_error.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	g, s := newGate(t, mcpgate.Config{})
	// A gate on the same Middleware: its routes are the Middleware's too.
	other, err := mcpgate.New(s.Middleware, mcpgate.Config{Tools: map[string]mcpgate.Requirement{"quote": reqQuote}})
	if err != nil {
		t.Fatal(err)
	}
	tok := s.Issuer.Mint(kyapay.TypePay)
	grant, err := g.Authorize(t.Context(), g.Tool("render"), middleware.Input{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if rc, ok := grant.Receipt(); !ok || rc.AmountCharged.String() != "0.25" || len(s.Issuer.ChargesFor(kyapaytest.TokenID(tok))) != 1 {
		t.Errorf("ChargeBefore tool: receipt %v %v", rc, ok)
	}
	grant, err = g.Authorize(t.Context(), g.Tool("quote"), middleware.Input{Token: s.Issuer.Mint(kyapay.TypePay)})
	if err != nil || !grant.Pending() {
		t.Errorf("charge-after tool: pending %v, %v", grant.Pending(), err)
	}
	grant.Abandon()
	_, err = g.Authorize(t.Context(), g.Tool("quote"), middleware.Input{TokenErr: kyapay.NewError(kyapay.CodeTokenAmbiguous, "two tokens", nil)})
	if kyapay.CodeOf(err) != kyapay.CodeTokenAmbiguous {
		t.Errorf("TokenErr: %v", err)
	}
	for name, tl := range map[string]*mcpgate.Tool{"other gate": other.Tool("quote"), "nil": nil} {
		if _, err := g.Authorize(t.Context(), tl, middleware.Input{Token: tok}); kyapay.CodeOf(err) != kyapay.CodeInternal {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return mustJSON(x) == mustJSON(y)
}
