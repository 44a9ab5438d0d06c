package kyapaymcp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// Invalid configurations are reported when the gate or the tool is
// installed, not when a call comes.
func TestInstallErrors(t *testing.T) {
	s := sellertest.New(t)
	m := s.Middleware
	priceFunc := kyapaymcp.Requirement{Requirement: middleware.Pay(middleware.PriceFunc(func(*http.Request) (kyapay.Amount, error) {
		return kyapay.MustParseAmount("0.01"), nil
	}))}

	// New reports what mcpgate.New reports, which mcpgate's tests cover.
	if _, err := kyapaymcp.New(nil, kyapaymcp.Config{}); err == nil || !strings.Contains(err.Error(), "nil *middleware.Middleware") {
		t.Errorf("New without a Middleware: %v", err)
	}
	if _, err := kyapaymcp.New(m, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{"q": priceFunc}}); err == nil ||
		!strings.Contains(err.Error(), "use middleware.ContextPrice") {
		t.Errorf("New with a PriceFunc price: %v", err)
	}

	g, err := kyapaymcp.New(m, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{"listed": reqQuote}})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	raw := func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return text("ok"), nil }
	obj := func() *jsonschema.Schema { return &jsonschema.Schema{Type: "object"} }
	own := &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{kyapaymcp.DefaultArgument: {Type: "string"}}}
	type ownArg struct {
		Token string `json:"skyfire-pay-id"`
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"listed", g.AddTool(server, &mcp.Tool{Name: "listed", InputSchema: obj()}, reqQuote, raw), "already gated by Config.Tools"},
		{"own argument", g.AddTool(server, &mcp.Tool{Name: "own", InputSchema: own}, reqQuote, raw), "has an argument"},
		{"own argument raw JSON", g.AddTool(server, &mcp.Tool{Name: "ownraw", InputSchema: json.RawMessage(`{"type":"object","properties":{"skyfire-pay-id":{}}}`)}, reqQuote, raw), "has an argument"},
		{"typed own argument", kyapaymcp.AddTool(server, g, &mcp.Tool{Name: "ownt"}, reqQuote,
			func(context.Context, *mcp.CallToolRequest, ownArg) (*mcp.CallToolResult, any, error) {
				return nil, nil, nil
			}), "has an argument"},
		{"PriceFunc", g.AddTool(server, &mcp.Tool{Name: "pf", InputSchema: obj()}, priceFunc, raw), "use middleware.ContextPrice"},
		{"before, no price", g.AddTool(server, &mcp.Tool{Name: "bf", InputSchema: obj()}, kyapaymcp.Requirement{ChargeBefore: true}, raw), "without a price"},
		{"nil handler", g.AddTool(server, &mcp.Tool{Name: "nh", InputSchema: obj()}, reqQuote, nil), "nil tool handler"},
		{"nil tool", g.AddTool(server, nil, reqQuote, raw), "nil *mcp.Tool"},
		{"nil server", g.AddTool(nil, &mcp.Tool{Name: "ns", InputSchema: obj()}, reqQuote, raw), "nil *mcp.Server"},
		{"nil gate", kyapaymcp.AddTool(server, nil, &mcp.Tool{Name: "ng"}, reqQuote,
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return nil, nil, nil
			}), "nil *Gate"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: AddTool error %v, want %q", tc.name, tc.err, tc.want)
		}
	}
	// A refused tool was not registered.
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
	if list, err := cs.ListTools(t.Context(), nil); err != nil || len(list.Tools) != 0 {
		t.Errorf("refused tools registered: %v %v", list, err)
	}
}

// Adding a tool again replaces its requirement along with its handler.
func TestAddToolReplaces(t *testing.T) {
	s := sellertest.New(t)
	g, err := kyapaymcp.New(s.Middleware, kyapaymcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	for i, price := range []string{"0.01", "0.02"} {
		answer := "v" + price
		err := g.AddTool(server, &mcp.Tool{Name: "quote", InputSchema: &jsonschema.Schema{Type: "object"}},
			kyapaymcp.Requirement{Requirement: middleware.Pay(middleware.FixedPrice(price))},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return text(answer), nil })
		if err != nil {
			t.Fatal(i, err)
		}
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true}))
	defer srv.Close()
	c := (&harness{url: srv.URL}).connect(t, clientOpts{})
	list, err := c.ListTools(t.Context(), nil)
	if err != nil || len(list.Tools) != 1 {
		t.Fatal(list, err)
	}
	if desc := property(t, list.Tools[0], kyapaymcp.DefaultArgument)["description"].(string); !strings.Contains(desc, "costs 0.02 USD") {
		t.Errorf("listed %q", desc)
	}
	tok := s.Issuer.Mint(kyapay.TypePay)
	res := c.call(t, "quote", map[string]any{kyapaymcp.DefaultArgument: tok}, nil)
	if res.IsError || resultText(res) != "v0.02" {
		t.Fatalf("%v %q", res.IsError, resultText(res))
	}
	charges := s.Issuer.ChargesFor(kyapaytest.TokenID(tok))
	if len(charges) != 1 || charges[0].Amount.String() != "0.02" {
		t.Errorf("charges %v, want one of 0.02", charges)
	}
}
