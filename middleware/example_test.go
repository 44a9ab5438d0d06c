package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// One middleware, one call per route: an identity route and a paid route.
// The fake issuer stands in for Skyfire (its JWKS and its charge API).
func ExampleMiddleware_Wrap() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()}, // with Skyfire: kyapay.ProductionIssuer
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   kyapaytest.DefaultAudience, // the seller agent's account ID
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	cc, err := charge.New(charge.Config{
		BaseURL:    iss.APIBaseURL(), // with Skyfire: charge.ProductionBaseURL
		APIKey:     charge.APIKey(iss.APIKey()),
		HTTPClient: iss.Client(),
	})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/whoami", m.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := kyapay.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", c.Human.Email)
	}), middleware.Identity("email")))
	mux.Handle("/quote", m.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, _ := middleware.ReceiptFromContext(r.Context())
		fmt.Fprintf(w, "quote; paid %s, %s left", rc.AmountCharged, rc.RemainingBalance)
	}), middleware.Pay(middleware.FixedPrice("0.01"))))

	get := func(path, token string) {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set(kyapay.HeaderName, token)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		body, _ := io.ReadAll(w.Body)
		first, _, _ := strings.Cut(string(body), ". ")
		fmt.Println(w.Code, first)
	}
	get("/whoami", iss.Mint(kyapay.TypeKYA, kyapaytest.Email("ada@example.com")))
	get("/quote", iss.Mint(kyapay.TypePay, kyapaytest.Amount("1")))
	get("/quote", "")
	// Output:
	// 200 hello ada@example.com
	// 200 quote; paid 0.01, 0.99 left
	// 402 ERROR: Missing pay token in the skyfire-pay-id header
}
