package middleware_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// An agent that retries a paid request with the same Idempotency-Key gets
// the stored response, marked as a replay, and pays once. The same key for
// another request is refused. With several replicas, give every
// Middleware the same shared Store (kyapayredis) and the guarantee holds
// across them.
func ExampleMiddleware_Wrap_idempotencyKey() {
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
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()), HTTPClient: iss.Client()})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc}) // Store: a kyapayredis.Store for many replicas
	if err != nil {
		panic(err)
	}
	defer m.Close()
	report := m.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "report for ", r.URL.Query().Get("q"))
	}), middleware.Pay(middleware.FixedPrice("0.01")))

	token := iss.Mint(kyapay.TypePay)
	get := func(query, key string) {
		r := httptest.NewRequest("GET", "/report?q="+query, nil)
		r.Header.Set(kyapay.HeaderName, token)
		r.Header.Set(middleware.IdempotencyKeyHeader, key)
		w := httptest.NewRecorder()
		report.ServeHTTP(w, r)
		line := fmt.Sprint(w.Code, " ", w.Body.String())
		if w.Header().Get(middleware.ReplayedHeader) == "true" {
			line += " (replayed)"
		}
		if code := w.Header().Get(middleware.CodeHeader); code != "" {
			line = fmt.Sprint(w.Code, " ", code)
		}
		fmt.Println(line)
	}
	get("acme", `"a1"`) // paid
	get("acme", `"a1"`) // the agent retries: the stored response
	get("other", `"a1"`)
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// 200 report for acme
	// 200 report for acme (replayed)
	// 422 idempotency_key_reused
	// charges: 1
}
