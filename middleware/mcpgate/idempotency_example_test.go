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

// An idempotent tools/call through a front end: the key in the call's
// _meta, the fingerprint of its arguments, the stored result replayed to a
// retry without running the tool or charging, and a key reused for other
// arguments refused.
func ExampleTool_Idempotency() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   "seller-1",
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
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Balance("1"))

	// result is what a front end delivers, in the shape of a
	// CallToolResult.
	type result struct {
		Content []map[string]string `json:"content"`
		Meta    map[string]any      `json:"_meta,omitempty"`
		IsError bool                `json:"isError,omitempty"`
	}
	runs := 0
	serve := func(meta map[string]any, args string) {
		ctx := context.Background()
		in := middleware.Input{Token: tok}
		var err error
		in.IdempotencyKey, in.Fingerprint, err = quote.Idempotency(meta, json.RawMessage(args))
		var grant middleware.Grant
		if err == nil {
			grant, err = g.Authorize(ctx, quote, in)
		}
		if err != nil {
			_, detail := g.ErrorResult(err)
			out, _ := json.Marshal(detail)
			fmt.Printf("isError: %s\n", out)
			return
		}
		if stored, ok := grant.Replay(); ok {
			var r result
			if err := json.Unmarshal(stored, &r); err != nil {
				panic(err)
			}
			r.Meta = mcpgate.ReplayMeta(r.Meta, &grant)
			out, _ := json.Marshal(r)
			fmt.Printf("replayed: %s\n", out)
			return
		}
		runs++
		r := result{Content: []map[string]string{{"type": "text", "text": fmt.Sprintf("quote #%d", runs)}}}
		rc, err := grant.Commit(ctx)
		if err == nil {
			r.Meta = mcpgate.ReceiptMeta(nil, rc)
		}
		_ = mcpgate.Finish(ctx, &grant, r) // stored with its receipt
		out, _ := json.Marshal(r)
		fmt.Printf("ran: %s\n", out)
	}
	key := map[string]any{mcpgate.IdempotencyMetaKey: "order-42"}
	serve(key, `{"symbol":"ACME","skyfire-pay-id":"`+tok+`"}`)
	serve(key, `{ "symbol": "ACME" }`) // a retry: the token elsewhere, other spacing
	serve(key, `{"symbol":"OTHER"}`)
	serve(map[string]any{mcpgate.IdempotencyMetaKey: 42}, `{"symbol":"ACME"}`)
	fmt.Println("charges:", len(iss.ChargesFor(kyapaytest.TokenID(tok))))
	// Output:
	// ran: {"content":[{"text":"quote #1","type":"text"}],"_meta":{"xyz.skyfire/receipt":{"amountCharged":"0.01","remainingBalance":"0.99"}}}
	// replayed: {"content":[{"text":"quote #1","type":"text"}],"_meta":{"xyz.skyfire/receipt":{"amountCharged":"0.01","remainingBalance":"0.99"},"xyz.skyfire/replayed":true}}
	// isError: {"error":"idempotency_key_reused","message":"ERROR: This idempotency key was used for a call of this tool with other arguments. Use a new key for a new call."}
	// isError: {"error":"idempotency_key_invalid","message":"ERROR: The idempotency key in _meta[\"xyz.skyfire/idempotency-key\"] is invalid: send a string of 1 to 255 visible ASCII characters."}
	// charges: 1
}
