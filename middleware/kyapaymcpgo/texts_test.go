package kyapaymcpgo_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// tools/list shows the texts and _meta entry of mcpgate, which pins their
// words, and a refusal ends with its sentence.
func TestToolTexts(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"install", "per-tool"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{perTool: mode == "per-tool", noInstall: mode == "per-tool"})
			core, err := mcpgate.New(e.Middleware, mcpgate.Config{Tools: map[string]mcpgate.Requirement{"quote": reqPay, "whoami": reqWhoami}})
			if err != nil {
				t.Fatal(err)
			}
			c := e.connect(t)
			tools := listed(t, c)
			for _, tc := range []struct{ tool, desc string }{
				{"quote", "A price quote."},
				{"whoami", ""},
			} {
				tl, want := tools[tc.tool], core.Tool(tc.tool)
				props, _ := schemaOf(t, tl)["properties"].(map[string]any)
				arg, _ := props[kyapaymcpgo.DefaultArgument].(map[string]any)
				if got := arg["description"]; got != want.ArgumentDescription() {
					t.Errorf("%s: argument description\n got %q\nwant %q", tc.tool, got, want.ArgumentDescription())
				}
				if d := want.DecorateDescription(tc.desc); tl.Description != d {
					t.Errorf("%s: description\n got %q\nwant %q", tc.tool, tl.Description, d)
				}
				info, _ := json.Marshal(want.Info())
				var wantInfo map[string]any
				if err := json.Unmarshal(info, &wantInfo); err != nil {
					t.Fatal(err)
				}
				if got := advertOf(t, tl); !reflect.DeepEqual(got, wantInfo) {
					t.Errorf("%s: _meta entry\n got %v\nwant %v", tc.tool, got, wantInfo)
				}
			}
			res := e.call(t, c, "quote", call{})
			_, err = core.Authorize(t.Context(), core.Tool("quote"), middleware.Input{})
			if got, want := text(res), core.RefusalDetail(err).Message; got != want {
				t.Errorf("refusal\n got %q\nwant %q", got, want)
			}
		})
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
