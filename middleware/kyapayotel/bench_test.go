package kyapayotel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

// discardWriter keeps nothing, so the benchmark does not measure a
// recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// BenchmarkPaidRequest serves a paid ChargeBefore request (cached token
// verification, a charge confirmed in memory, the handler) without an
// observer, with the OpenTelemetry observer on an SDK MeterProvider, and
// with that observer plus a sampled kyapay.charge span (exported to a
// no-op exporter): read them side by side from one run.
func BenchmarkPaidRequest(b *testing.B) {
	for _, bc := range []struct {
		name  string
		obs   bool
		spans bool
	}{
		{"observer=none", false, false},
		{"observer=kyapayotel", true, false},
		{"observer=kyapayotel+span", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
			b.Cleanup(func() { mp.Shutdown(context.Background()); tp.Shutdown(context.Background()) })
			obs, err := kyapayotel.New(mp)
			if err != nil {
				b.Fatal(err)
			}
			s := sellertest.New(b, func(c *middleware.Config) {
				c.Charger = stubCharger{}
				if bc.obs {
					c.Observer = obs
				}
				if bc.spans {
					c.Charger = kyapayotel.WrapCharger(c.Charger, tp)
				}
			})
			h := s.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("ok"))
			}), middleware.Pay(middleware.FixedPrice("0.01")))
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.Header.Set(kyapay.HeaderName, s.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("1000000")))
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != 0 && w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
