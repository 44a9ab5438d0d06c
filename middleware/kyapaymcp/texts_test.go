package kyapaymcp_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// tools/list shows the texts and _meta entry of mcpgate, which pins their
// words, and a refusal ends with its sentence.
func TestToolTexts(t *testing.T) {
	for _, inst := range installs {
		t.Run(inst.String(), func(t *testing.T) {
			h := newHarness(t, harnessOpts{install: inst})
			core, err := mcpgate.New(h.seller.Middleware, mcpgate.Config{Tools: map[string]mcpgate.Requirement{"quote": reqQuote, "whoami": reqWhoami}})
			if err != nil {
				t.Fatal(err)
			}
			c := h.connect(t, clientOpts{})
			list, err := c.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]*mcp.Tool{}
			for _, tl := range list.Tools {
				byName[tl.Name] = tl
			}
			for _, name := range []string{"quote", "whoami"} {
				tl, want := byName[name], core.Tool(name)
				if got := property(t, tl, kyapaymcp.DefaultArgument)["description"]; got != want.ArgumentDescription() {
					t.Errorf("%s: argument description\n got %q\nwant %q", name, got, want.ArgumentDescription())
				}
				if d := want.DecorateDescription("the " + name + " tool"); tl.Description != d {
					t.Errorf("%s: description\n got %q\nwant %q", name, tl.Description, d)
				}
				got, _ := json.Marshal(tl.Meta[kyapaymcp.ToolMetaKey])
				if info, _ := json.Marshal(want.Info()); !jsonEqual(got, info) {
					t.Errorf("%s: _meta entry\n got %s\nwant %s", name, got, info)
				}
			}
			res := c.call(t, "quote", nil, nil)
			_, err = core.Authorize(t.Context(), core.Tool("quote"), middleware.Input{})
			if got, want := resultText(res), core.RefusalDetail(err).Message; got != want {
				t.Errorf("refusal\n got %q\nwant %q", got, want)
			}
		})
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
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
