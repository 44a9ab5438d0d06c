package mcpgate_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/mcpgate"
)

// The path of a tools/call through a front end, without an MCP SDK: take
// the token out of the call, authorize it, run the tool, charge a final
// result and put the receipt in its _meta, or answer the refusal. The fake
// issuer from kyapaytest stands in for Skyfire.
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

	g, err := mcpgate.New(m, mcpgate.Config{Tools: map[string]mcpgate.Requirement{
		"quote": {Requirement: middleware.Pay(middleware.FixedPrice("0.01"))},
	}})
	if err != nil {
		panic(err)
	}
	quote := g.Tool("quote")
	fmt.Println(quote.DecorateDescription("A price quote."))

	// serve is a front end's tools/call of quote, with the call's _meta and
	// raw JSON arguments.
	serve := func(meta map[string]any, args string) {
		f := g.NewFinder()
		f.Meta(meta)
		rest, err := f.Arguments(json.RawMessage(args))
		if err != nil {
			fmt.Println("invalid params:", err)
			return
		}
		tok, tokErr := f.Result()
		grant, err := g.Authorize(context.Background(), quote, middleware.Input{Token: tok, TokenErr: tokErr})
		if err == nil {
			fmt.Printf("the tool runs with %s\n", rest)
			var rc charge.Receipt
			if rc, err = grant.Commit(context.Background()); err == nil {
				out, _ := json.Marshal(mcpgate.ReceiptMeta(g.MetaWithoutToken(meta), rc))
				fmt.Printf("result _meta: %s\n", out)
				return
			}
		}
		d := g.RefusalDetail(err)
		fmt.Printf("isError: %s: %s\n", d.Error, firstSentence(d.Message))
	}
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	serve(nil, `{"symbol":"ACME","skyfire-pay-id":"`+tok+`"}`)
	serve(map[string]any{mcpgate.DefaultMetaKey: tok, "trace": "t1"}, `{"symbol":"ACME"}`)
	serve(map[string]any{mcpgate.DefaultMetaKey: tok}, `{"symbol":"ACME","skyfire-pay-id":"eyOther"}`)
	serve(nil, `{"symbol":"ACME"}`)
	serve(nil, `["ACME"]`)
	// Output:
	// A price quote.
	//
	// Paid tool: 0.01 USD per call, charged only when the call succeeds. Pass a Skyfire KYAPay token (pay or kya-pay) in the "skyfire-pay-id" argument.
	// the tool runs with {"symbol":"ACME"}
	// result _meta: {"xyz.skyfire/receipt":{"amountCharged":"0.01","remainingBalance":"0.99"}}
	// the tool runs with {"symbol":"ACME"}
	// result _meta: {"trace":"t1","xyz.skyfire/receipt":{"amountCharged":"0.01","remainingBalance":"0.98"}}
	// isError: token_ambiguous: ERROR: Invalid KYAPay token in the skyfire-pay-id header.
	// isError: token_missing: ERROR: Missing pay token in the skyfire-pay-id header.
	// invalid params: mcpgate: tool arguments are not a JSON object
}

// firstSentence shortens the long refusal texts.
func firstSentence(s string) string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' {
			return s[:i+1]
		}
	}
	return s
}
