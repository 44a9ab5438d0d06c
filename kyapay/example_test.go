package kyapay_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// A verifier for one trusted issuer. With Skyfire, Issuers is
// []string{kyapay.ProductionIssuer} and the JWKS location is derived from
// it; here the fake issuer from kyapaytest stands in.
func ExampleVerifier_Verify() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   kyapaytest.DefaultAudience, // the seller agent's account ID
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	claims, err := v.Verify(context.Background(), iss.Mint(kyapay.TypeKYAPay, kyapaytest.Email("ada@example.com"), kyapaytest.Amount("5")))
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.Type, claims.Human.Email, claims.Amount, claims.Currency)

	_, err = v.Verify(context.Background(), iss.Mint(kyapay.TypePay, kyapaytest.Audience("someone-else")))
	fmt.Println(errors.Is(err, kyapay.ErrAudienceMismatch), kyapay.CodeOf(err))
	// Output:
	// kya-pay ada@example.com 5 USD
	// true audience_mismatch
}

// Amounts are exact decimals: no floating point, no rounding.
func ExampleParseAmount() {
	balance := kyapay.MustParseAmount("0.30")
	price, err := kyapay.ParseAmount("0.1")
	if err != nil {
		panic(err)
	}
	for i := 0; i < 3; i++ {
		balance, _ = balance.Sub(price)
	}
	fmt.Println(balance, balance.IsZero())
	_, err = kyapay.ParseAmount("1e-2")
	fmt.Println(err)
	// Output:
	// 0 true
	// kyapay: amount is not a plain decimal number: "1e-2"
}
