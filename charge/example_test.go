package charge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// fakeSkyfire stands in for https://api.skyfire.xyz: it charges tokens
// holding 5.00 and refuses anything above the remaining balance.
func fakeSkyfire() *httptest.Server {
	balance := kyapay.MustParseAmount("5")
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token        string        `json:"token"`
			ChargeAmount kyapay.Amount `json:"chargeAmount"`
		}
		if r.Header.Get("skyfire-api-key") == "" || json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		left, err := balance.Sub(req.ChargeAmount)
		if err != nil {
			w.WriteHeader(http.StatusPaymentRequired)
			fmt.Fprint(w, `{"code":"PAYMENT_ERROR","message":"Charge amount exceeds token value"}`)
			return
		}
		balance = left
		_ = json.NewEncoder(w).Encode(map[string]any{"amountCharged": req.ChargeAmount, "remainingBalance": left})
	}))
}

func Example() {
	srv := fakeSkyfire()
	defer srv.Close()

	// One Client per process; in production BaseURL is charge.ProductionBaseURL.
	c, err := charge.New(charge.Config{BaseURL: srv.URL, APIKey: "sk_example"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	token := "eyJhbGciOiJFUzI1NiJ9.e30.c2ln" // the buyer's skyfire-pay-id header

	r, err := c.Charge(ctx, token, kyapay.MustParseAmount("0.01"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("charged %s, %s left\n", r.AmountCharged, r.RemainingBalance)

	_, err = c.Charge(ctx, token, kyapay.MustParseAmount("10"))
	switch charge.OutcomeOf(err) {
	case charge.OutcomeDeclined:
		// Nothing was charged. With insufficient_balance the token cannot
		// pay this price: ask the agent for a new token (402). With
		// payment_failed the balance may be intact: the token may be
		// charged again later.
		fmt.Println("declined:", charge.ReasonOf(err))
	case charge.OutcomeUnknown:
		// The charge may have happened: never answer 402 here.
		fmt.Println("unknown: reconcile later")
	case charge.OutcomeNotSent:
		// Nothing was charged; Skyfire could not be reached.
		fmt.Println("not sent: try again later")
	}
	// Output:
	// charged 0.01, 4.99 left
	// declined: insufficient_balance
}

func ExampleAPIKey() {
	key := charge.APIKey("sk_live_secret")
	fmt.Println(key)
	fmt.Printf("%#v %q %x\n", key, key, key)
	fmt.Println(len(key.Reveal()))
	// Output:
	// [REDACTED]
	// [REDACTED] [REDACTED] [REDACTED]
	// 14
}

func ExampleOutcomeOf() {
	err := error(&charge.Error{Op: "charge", Outcome: charge.OutcomeUnknown, Reason: charge.ReasonServer, Status: 503})
	if charge.OutcomeOf(err) == charge.OutcomeUnknown {
		fmt.Println("may have been charged:", err)
	}
	// Output:
	// may have been charged: charge: charge outcome unknown (server_error): HTTP 503
}
