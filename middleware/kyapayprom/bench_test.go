package kyapayprom_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayprom"
)

// stubCharger confirms every charge at once, so the benchmark measures the
// middleware and its observer, not a network round trip.
type stubCharger struct{}

func (stubCharger) Charge(_ context.Context, _ string, a kyapay.Amount) (charge.Receipt, error) {
	return charge.Receipt{AmountCharged: a}, nil
}

func (stubCharger) ChargeServicePrice(context.Context, string) (charge.Receipt, error) {
	return charge.Receipt{}, nil
}

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
// observer and with the Prometheus observer: read the two side by side
// from one run.
func BenchmarkPaidRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		obs  func(b *testing.B) middleware.Observer
	}{
		{"observer=none", func(*testing.B) middleware.Observer { return nil }},
		{"observer=kyapayprom", func(b *testing.B) middleware.Observer {
			obs, err := kyapayprom.New(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			return obs
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			obs := bc.obs(b)
			s := sellertest.New(b, func(c *middleware.Config) {
				c.Charger = stubCharger{}
				if obs != nil {
					c.Observer = obs
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
