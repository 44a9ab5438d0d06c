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

	g, err := kyapaymcpgo.New(kyapaymcpgo.Config{
		Middleware: m,
		Tools: map[string]middleware.Requirement{
			"quote": middleware.Pay(middleware.FixedPrice("0.01")),
		},
	})
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

// The per-tool wrapper returns the tool with the token argument declared
// in its stored input schema, and its handler gated, so the tool is paid
// for on a server where Install was never called. Here the tool charges
// before its handler runs, which can then read the receipt.
func ExampleGate_Tool() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	g, err := kyapaymcpgo.New(kyapaymcpgo.Config{
		Middleware:   newMiddleware(iss),
		Tools:        map[string]middleware.Requirement{"render": middleware.Pay(middleware.FixedPrice("0.25"))},
		ChargeBefore: []string{"render"},
	})
	if err != nil {
		panic(err)
	}
	s := server.NewMCPServer("seller", "1.0.0", server.WithInputSchemaValidation(), server.WithStrictInputSchemaDefault())
	st := g.Tool(mcp.NewTool("render"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		rc, _ := middleware.ReceiptFromContext(ctx)
		return mcp.NewToolResultText("rendered; paid " + rc.AmountCharged.String() + " USD"), nil
	})
	s.AddTools(st)
	fmt.Println(st.Tool.Meta.AdditionalFields[kyapaymcpgo.ToolMetaKey].(*kyapaymcpgo.Advert).ChargeTiming)

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
