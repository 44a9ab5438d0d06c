package kyapayprom_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayprom"
)

// A seller's middleware reports to Prometheus: the Observer registers on
// the registry that the /metrics handler serves. Two paid requests and a
// request without a token, then a scrape. The fake issuer from kyapaytest
// stands in for Skyfire.
func Example() {
	reg := prometheus.NewRegistry()
	obs, err := kyapayprom.New(reg)
	if err != nil {
		panic(err)
	}

	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()}, // in production: kyapay.ProductionIssuer
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
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc, Observer: obs})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /quote", m.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "quote")
	}), middleware.Pay(middleware.FixedPrice("0.1"))))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	get := func(path, token string) string {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			r.Header.Set(kyapay.HeaderName, token)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Body.String()
	}
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
	get("/quote", tok)
	get("/quote", tok)
	get("/quote", "")

	for line := range strings.Lines(get("/metrics", "")) {
		if strings.HasPrefix(line, "kyapay_requests_total") || strings.HasPrefix(line, "kyapay_charged_usd_total") {
			fmt.Print(line)
		}
	}
	// Output:
	// kyapay_charged_usd_total{route="GET /quote",token_type="pay"} 0.2
	// kyapay_requests_total{code="",outcome="verified",route="GET /quote",token_type="pay"} 2
	// kyapay_requests_total{code="token_missing",outcome="refused",route="GET /quote",token_type="none"} 1
}
