package kyapaymcpgo_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcpgo"
)

// An MCP server that sells a quote tool for 0.01 USD per call. The agent
// passes its pay token as the skyfire-pay-id argument; the call is charged
// once the tool succeeded, and the receipt comes back in the result's _meta.
// A call without a token gets the refusal as an isError result. The fake
// issuer from kyapaytest stands in for Skyfire.
func Example() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	m := newMiddleware(iss)

	g, err := kyapaymcpgo.New(m, kyapaymcpgo.Config{Tools: map[string]kyapaymcpgo.Requirement{
		"quote": {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
	}})
	if err != nil {
		panic(err)
	}
	s := server.NewMCPServer("seller", "1.0.0", server.WithInputSchemaValidation())
	s.AddTool(mcp.NewTool("quote", mcp.WithString("symbol", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			claims, _ := kyapay.FromContext(ctx)
			return mcp.NewToolResultText("ACME 42.00 for " + claims.Subject), nil
		})
	g.Install(s)
	srv := httptest.NewServer(server.NewStreamableHTTPServer(s))
	defer srv.Close()

	c := connectExample(srv.URL + "/mcp")
	defer c.Close()
	token := iss.Mint(kyapay.TypePay, kyapaytest.Subject("agent-42"), kyapaytest.Balance("1"))
	for _, args := range []map[string]any{
		{"symbol": "ACME", "skyfire-pay-id": token},
		{"symbol": "ACME"},
	} {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = "quote", args
		res, err := c.CallTool(context.Background(), req)
		if err != nil {
			panic(err)
		}
		fmt.Println(res.IsError, firstSentence(text(res)))
		if res.Meta != nil && res.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey] != nil {
			fmt.Println("receipt:", res.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey])
		}
	}
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// false ACME 42.00 for agent-42
	// receipt: map[amountCharged:0.01 remainingBalance:0.99]
	// true ERROR: Missing pay token in the skyfire-pay-id header.
	// charges: 1
}

// The per-tool form returns the tool, with its requirement, the token
// argument declared in its stored input schema and its handler gated, so
// the tool is paid for on a server where Install was never called. Here
// the tool charges before its handler runs, which can then read the
// receipt.
func ExampleGate_Tool() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	g, err := kyapaymcpgo.New(newMiddleware(iss), kyapaymcpgo.Config{})
	if err != nil {
		panic(err)
	}
	s := server.NewMCPServer("seller", "1.0.0", server.WithInputSchemaValidation(), server.WithStrictInputSchemaDefault())
	st, err := g.Tool(mcp.NewTool("render"),
		kyapaymcpgo.Requirement{Requirement: middleware.Pay(middleware.FixedPrice("0.25")), ChargeBefore: true},
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			rc, _ := middleware.ReceiptFromContext(ctx)
			return mcp.NewToolResultText("rendered; paid " + rc.AmountCharged.String() + " USD"), nil
		})
	if err != nil {
		panic(err)
	}
	s.AddTools(st)
	fmt.Println(st.Tool.Meta.AdditionalFields[kyapaymcpgo.ToolMetaKey].(*kyapaymcpgo.ToolInfo).ChargeTiming)

	srv := httptest.NewServer(server.NewStreamableHTTPServer(s))
	defer srv.Close()
	c := connectExample(srv.URL + "/mcp")
	defer c.Close()
	req := mcp.CallToolRequest{}
	req.Params.Name = "render"
	req.Params.Arguments = map[string]any{"skyfire-pay-id": iss.Mint(kyapay.TypePay)}
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		panic(err)
	}
	fmt.Println(text(res))
	// Output:
	// before
	// rendered; paid 0.25 USD
}

// An agent that retries a paid call, after a dropped connection say, sends
// the same idempotency key in the call's _meta: the retry gets the first
// result back, marked as replayed, without the tool running or the token
// being charged again.
func Example_idempotency() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	g, err := kyapaymcpgo.New(newMiddleware(iss), kyapaymcpgo.Config{Tools: map[string]kyapaymcpgo.Requirement{
		"order": {Requirement: middleware.Pay(middleware.FixedPrice("0.50"))},
	}})
	if err != nil {
		panic(err)
	}
	s := server.NewMCPServer("shop", "1.0.0")
	orders := 0
	s.AddTool(mcp.NewTool("order", mcp.WithString("item")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			orders++
			return mcp.NewToolResultText(fmt.Sprintf("order #%d placed", orders)), nil
		})
	g.Install(s)
	srv := httptest.NewServer(server.NewStreamableHTTPServer(s))
	defer srv.Close()

	c := connectExample(srv.URL + "/mcp")
	defer c.Close()
	token := iss.Mint(kyapay.TypePay, kyapaytest.Balance("5"))
	for range 2 {
		req := mcp.CallToolRequest{}
		req.Params.Name = "order"
		req.Params.Arguments = map[string]any{"item": "book", "skyfire-pay-id": token}
		req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{kyapaymcpgo.IdempotencyMetaKey: "order-2f9c"}}
		res, err := c.CallTool(context.Background(), req)
		if err != nil {
			panic(err)
		}
		receipt, _ := res.Meta.AdditionalFields[kyapaymcpgo.ReceiptMetaKey].(map[string]any)
		fmt.Println(text(res), "charged", receipt["amountCharged"],
			"replayed", res.Meta.AdditionalFields[kyapaymcpgo.ReplayedMetaKey] == true)
	}
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// order #1 placed charged 0.5 replayed false
	// order #1 placed charged 0.5 replayed true
	// charges: 1
}

func newMiddleware(iss *kyapaytest.Issuer) *middleware.Middleware {
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()}, // in production: kyapay.ProductionIssuer
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   "seller-1", // the seller agent's account ID
	})
	if err != nil {
		panic(err)
	}
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()), HTTPClient: iss.Client()})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		panic(err)
	}
	return m
}

func connectExample(url string) *client.Client {
	tr, err := transport.NewStreamableHTTP(url)
	if err != nil {
		panic(err)
	}
	c := client.NewClient(tr)
	if err := c.Start(context.Background()); err != nil {
		panic(err)
	}
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{Params: mcp.InitializeParams{
		ProtocolVersion: mcp.LATEST_PROTOCOL_VERSION, ClientInfo: mcp.Implementation{Name: "agent", Version: "1"}}}); err != nil {
		panic(err)
	}
	return c
}

// firstSentence shortens the long refusal texts.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
