package kyapaytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// A test starts a fake issuer, mints a pay token, and charges it through
// the fake seller API just as a seller would charge Skyfire.
func Example() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()

	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.03"))

	body, _ := json.Marshal(map[string]string{"token": tok, "chargeAmount": "0.01"})
	req, _ := http.NewRequest(http.MethodPost, iss.APIBaseURL()+"/api/v1/tokens/charge", bytes.NewReader(body))
	req.Header.Set("skyfire-api-key", iss.APIKey())
	resp, err := iss.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var out struct {
		AmountCharged    string `json:"amountCharged"`
		RemainingBalance string `json:"remainingBalance"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	fmt.Println(resp.StatusCode, out.AmountCharged, out.RemainingBalance)

	balance, _ := iss.Balance(kyapaytest.TokenID(tok))
	fmt.Println("ledger:", iss.ChargeCount(), "charge, balance", balance)
	// Output:
	// 200 0.01 0.02
	// ledger: 1 charge, balance 0.02
}

func ExampleIssuer_Mint() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()

	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("5"))

	header, claims, _ := kyapaytest.Decode(tok)
	fmt.Println(header["alg"], header["kid"], header["typ"])
	fmt.Println(claims["aud"], claims["amt"], claims["val"], claims["cur"], claims["spr"], claims["sps"], claims["mnr"])
	fmt.Println(claims["iss"] == iss.Issuer(), iss.JWKSURL() == iss.Issuer()+kyapay.JWKSPath)
	// Output:
	// ES256 key-1 pay+jwt
	// seller-1 5 5000000 USD 0.01 pay_per_use 500
	// true true
}

// Tokens in the 2025 claim vocabulary test a verifier's legacy support.
func ExampleLegacy() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()

	tok := iss.Mint(kyapay.TypeKYAPay, kyapaytest.Legacy(), kyapaytest.Amount("15"), kyapaytest.Email("ada@example.com"))

	header, claims, _ := kyapaytest.Decode(tok)
	fmt.Println(header["typ"], claims["ver"])
	fmt.Println(claims["amount"], claims["value"], claims["spr"], claims["sps"], claims["mnr"])
	fmt.Println(claims["bid"].(map[string]any)["email"])
	// Output:
	// kya+pay+JWT 1
	// 15.000000 15000000 0.010000 PAY_PER_USE 1500
	// ada@example.com
}

// Expired tokens are minted with a fixed clock rather than by waiting.
func ExampleWithClock() {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(func() time.Time { return now }))
	defer iss.Close()

	tok := iss.Mint(kyapay.TypeKYA, kyapaytest.ExpiresIn(-time.Minute))

	_, claims, _ := kyapaytest.Decode(tok)
	fmt.Println(claims["iat"], claims["exp"])
	// Output:
	// 1767323045 1767322985
}

// The hardest charge failure: Skyfire charged the token, but the answer
// never arrived. OnApply tells the test the request is being held.
func ExampleIssuer_InjectFault() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)

	ctx, giveUp := context.WithCancel(context.Background())
	iss.InjectFault(kyapaytest.Fault{
		Endpoint:           kyapaytest.EndpointCharge,
		TimeoutAfterCharge: true,
		Times:              1,
		OnApply:            giveUp, // the client gives up once the charge is made
	})

	body, _ := json.Marshal(map[string]string{"token": tok, "chargeAmount": "0.01"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, iss.APIBaseURL()+"/api/v1/tokens/charge", bytes.NewReader(body))
	req.Header.Set("skyfire-api-key", iss.APIKey())
	_, err := iss.Client().Do(req)

	fmt.Println("client saw:", errors.Is(err, context.Canceled))
	fmt.Println("charges recorded:", iss.ChargeCount())
	// Output:
	// client saw: true
	// charges recorded: 1
}

func ExampleIssuer_RotateKey() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()

	old := iss.Mint(kyapay.TypePay)
	iss.RotateKey()
	fmt.Println(iss.KeyIDs(), "signing with", iss.SigningKeyID())

	iss.RemoveKey("key-1") // tokens signed with key-1 stop verifying
	fmt.Println(iss.KeyIDs())

	header, _, _ := kyapaytest.Decode(old)
	fmt.Println("old token kid:", header["kid"])
	// Output:
	// [key-1 key-2] signing with key-2
	// [key-2]
	// old token kid: key-1
}
