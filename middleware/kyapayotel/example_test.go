package kyapayotel_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

// A seller's middleware reports to OpenTelemetry: metrics through the
// Observer, and a span per charge through the wrapped Charger, with the
// charge client's HTTP attempts traced by otelhttp under it. Here the SDK
// keeps both in memory; an application configures exporters instead. The
// fake issuer from kyapaytest stands in for Skyfire.
func Example() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))

	obs, err := kyapayotel.New(mp)
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
	cc, err := charge.New(charge.Config{
		BaseURL: iss.APIBaseURL(), // in production: charge.ProductionBaseURL
		APIKey:  charge.APIKey(iss.APIKey()),
		HTTPClient: &http.Client{Transport: otelhttp.NewTransport(iss.Client().Transport,
			otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(noop.NewMeterProvider()))},
	})
	if err != nil {
		panic(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: kyapayotel.WrapCharger(cc, tp), Observer: obs})
	if err != nil {
		panic(err)
	}
	quote := m.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "quote")
	}), middleware.Pay(middleware.FixedPrice("0.1")))

	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
	for range 3 {
		r := httptest.NewRequest(http.MethodGet, "/quote", nil)
		r.Header.Set(kyapay.HeaderName, tok)
		quote.ServeHTTP(httptest.NewRecorder(), r)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, met := range sm.Metrics {
			if met.Name == kyapayotel.MetricCharged {
				for _, dp := range met.Data.(metricdata.Sum[float64]).DataPoints {
					fmt.Println(met.Name, dp.Value, met.Unit)
				}
			}
		}
	}
	byID := map[string]string{}
	for _, s := range spans.GetSpans() {
		byID[s.SpanContext.SpanID().String()] = s.Name
	}
	for _, s := range spans.GetSpans()[:2] {
		parent := byID[s.Parent.SpanID().String()]
		fmt.Printf("span %q under %q\n", s.Name, parent)
	}
	// Output:
	// kyapay.charged 0.3 USD
	// span "HTTP POST" under "kyapay.charge"
	// span "kyapay.charge" under ""
}
