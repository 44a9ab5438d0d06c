package kyapaymcp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaymcp"
)

// An MCP server selling one tool for 0.01 USD per successful call, served
// over streamable HTTP. The agent's model passes its pay token as the
// skyfire-pay-id argument; a call without one gets the refusal as a tool
// error. The fake issuer from kyapaytest stands in for Skyfire.
func Example() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()}, // in production: kyapay.ProductionIssuer
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   "seller-1", // the seller agent's account ID
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()), HTTPClient: iss.Client()})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		panic(err)
	}

	// The gate: one requirement per paid tool, one middleware on the server.
	g, err := kyapaymcp.New(m, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{
		"quote": {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
	}})
	if err != nil {
		panic(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "quotes", Version: "1"}, nil)
	server.AddTool(&mcp.Tool{Name: "quote", Description: "a stock quote", InputSchema: &jsonschema.Schema{Type: "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			claims, _ := kyapay.FromContext(ctx)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ACME 42.00 for " + claims.Subject}}}, nil
		})
	server.AddReceivingMiddleware(g.Middleware())
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true}))
	defer srv.Close()

	// A buyer agent.
	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		panic(err)
	}
	defer cs.Close()
	token := iss.Mint(kyapay.TypePay, kyapaytest.Subject("agent-42"))
	for _, args := range []map[string]any{{}, {"skyfire-pay-id": token}} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "quote", Arguments: args})
		if err != nil {
			panic(err)
		}
		receipt, _ := res.Meta[kyapaymcp.ReceiptMetaKey].(map[string]any)
		fmt.Println(res.IsError, firstSentence(res.Content[0].(*mcp.TextContent).Text), receipt["amountCharged"])
	}
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// true ERROR: Missing pay token in the skyfire-pay-id header. <nil>
	// false ACME 42.00 for agent-42 0.01
	// charges: 1
}

// Per-tool registration: kyapaymcp.AddTool registers a typed tool as
// mcp.AddTool does and installs its gate, so the tool cannot be served
// without it. The token argument is removed before the SDK validates the
// input against the strict schema inferred from the input struct.
func ExampleAddTool() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	v, err := kyapay.NewVerifier(iss.VerifierConfig())
	if err != nil {
		panic(err)
	}
	defer v.Close()
	m, err := middleware.New(middleware.Config{Verifier: v})
	if err != nil {
		panic(err)
	}
	g, err := kyapaymcp.New(m, kyapaymcp.Config{})
	if err != nil {
		panic(err)
	}

	type in struct {
		Greeting string `json:"greeting"`
	}
	type out struct {
		Reply string `json:"reply"`
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "hello", Version: "1"}, nil)
	err = kyapaymcp.AddTool(server, g, &mcp.Tool{Name: "whoami", Description: "greets the buyer by email"},
		kyapaymcp.Requirement{Requirement: middleware.Identity("email")},
		func(ctx context.Context, _ *mcp.CallToolRequest, args in) (*mcp.CallToolResult, out, error) {
			claims, _ := kyapay.FromContext(ctx)
			email, _ := claims.Human.Field("email")
			return nil, out{Reply: args.Greeting + ", " + email}, nil
		})
	if err != nil {
		panic(err)
	}

	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(context.Background(), st, nil)
	if err != nil {
		panic(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		panic(err)
	}
	defer cs.Close()
	kya := iss.Mint(kyapay.TypeKYA, kyapaytest.Email("ada@example.com"))
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami",
		Arguments: map[string]any{"greeting": "hello", "skyfire-pay-id": kya}})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.IsError, res.StructuredContent)
	// Output:
	// false map[reply:hello, ada@example.com]
}

// An agent that retries a paid call, after a dropped connection say, sends
// the same idempotency key in the call's _meta: the retry gets the first
// result back, marked as replayed, without the tool running or the token
// being charged again.
func Example_idempotency() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	v, err := kyapay.NewVerifier(iss.VerifierConfig())
	if err != nil {
		panic(err)
	}
	defer v.Close()
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()), HTTPClient: iss.Client()})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		panic(err)
	}
	g, err := kyapaymcp.New(m, kyapaymcp.Config{Tools: map[string]kyapaymcp.Requirement{
		"order": {Requirement: middleware.Pay(middleware.FixedPrice("0.50"))},
	}})
	if err != nil {
		panic(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "shop", Version: "1"}, nil)
	orders := 0
	server.AddTool(&mcp.Tool{Name: "order", InputSchema: &jsonschema.Schema{Type: "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			orders++
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("order #%d placed", orders)}}}, nil
		})
	server.AddReceivingMiddleware(g.Middleware())

	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(context.Background(), st, nil)
	if err != nil {
		panic(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		panic(err)
	}
	defer cs.Close()
	token := iss.Mint(kyapay.TypePay, kyapaytest.Balance("5"))
	for range 2 {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "order",
			Arguments: map[string]any{"item": "book", "skyfire-pay-id": token},
			Meta:      mcp.Meta{kyapaymcp.IdempotencyMetaKey: "order-2f9c"}})
		if err != nil {
			panic(err)
		}
		receipt, _ := res.Meta[kyapaymcp.ReceiptMetaKey].(map[string]any)
		fmt.Println(res.Content[0].(*mcp.TextContent).Text, "charged", receipt["amountCharged"],
			"replayed", res.Meta[kyapaymcp.ReplayedMetaKey] == true)
	}
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// order #1 placed charged 0.5 replayed false
	// order #1 placed charged 0.5 replayed true
	// charges: 1
}

// firstSentence shortens the long refusal texts.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
