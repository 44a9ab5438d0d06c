package middleware_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// The default responder answers a missing token on a paid route with
// Skyfire's recommended 402 text.
func ExampleDefaultErrorHandler() {
	respond := middleware.DefaultErrorHandler(middleware.PolicySeed)
	refusal := &middleware.Refusal{
		Err:      kyapay.NewError(kyapay.CodePayRequired, "", nil),
		Accepted: kyapay.TypePay | kyapay.TypeKYAPay,
		Price:    kyapay.MustParseAmount("0.01"),
		HasPrice: true,
	}
	rec := httptest.NewRecorder()
	respond(rec, httptest.NewRequest(http.MethodGet, "/v1/forecast", nil), refusal)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(rec.Body.String())
	// Output:
	// 402 text/plain; charset=utf-8
	// ERROR: Missing pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The required amount is 0.01 USD.
}

// An MCP client calling a tool over JSON-RPC gets a CallToolResult with
// isError set, wrapped in a JSON-RPC response with its request id.
func ExampleDefaultErrorHandler_mcp() {
	respond := middleware.DefaultErrorHandler(middleware.PolicyStatusCodes)
	refusal := &middleware.Refusal{
		Err:      kyapay.NewError(kyapay.CodeTokenExpired, "", nil),
		Accepted: kyapay.TypeKYAPay,
	}
	req := httptest.NewRequest(http.MethodPost, "/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"forecast"}}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	respond(rec, req, refusal)
	fmt.Println(rec.Code)
	fmt.Println(rec.Body.String())
	// Output:
	// 401
	// {"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"Invalid KYA-Pay token in the skyfire-pay-id header. Token has expired. Please create an account at https://app.skyfire.xyz and create a KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."}],"isError":true,"structuredContent":{"error":"token_expired","message":"Invalid KYA-Pay token in the skyfire-pay-id header. Token has expired. Please create an account at https://app.skyfire.xyz and create a KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header.","acceptedTokenTypes":["kya-pay"],"header":"skyfire-pay-id","createTokenUrl":"https://docs.skyfire.xyz/reference/create-token"}}}
}

// The status codes of the two policies.
func ExampleStatusPolicy_Status() {
	for _, code := range []kyapay.Code{kyapay.CodeTokenMissing, kyapay.CodeTokenExpired, kyapay.CodeTokenDepleted, kyapay.CodeChargeUnknown} {
		fmt.Println(code, middleware.PolicySeed.Status(code), middleware.PolicyStatusCodes.Status(code))
	}
	// Output:
	// token_missing 402 403
	// token_expired 402 401
	// token_depleted 402 402
	// charge_unknown 502 502
}

// A custom ErrorHandler can log the internal cause and reuse the standard
// wording.
func ExampleRefusalMessage() {
	ref := &middleware.Refusal{
		Err:      kyapay.NewError(kyapay.CodeTokenDepleted, "", nil),
		Accepted: kyapay.AnyType,
		Price:    kyapay.MustParseAmount("0.05"),
		HasPrice: true,
	}
	fmt.Println(middleware.RefusalMessage(ref, middleware.PolicySeed))
	// Output:
	// ERROR: The given pay token is depleted. Please create and send a new pay token. The required amount is 0.05 USD.
}

// Serve an llms.txt that tells agents how to pay.
func ExampleLLMsTxt() {
	h, err := middleware.LLMsTxt(middleware.ServiceInfo{
		Name:        "Weather API",
		Description: "Forecasts for AI agents.",
		Routes: []middleware.RouteInfo{
			{Method: "GET", Path: "/v1/forecast", Description: "Seven-day forecast.", Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /llms.txt", h)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/llms.txt", nil))
	lines := strings.Split(rec.Body.String(), "\n")
	fmt.Println(strings.Join(lines[:3], "\n"))
	// Output:
	// # Weather API
	//
	// > Forecasts for AI agents.
}
