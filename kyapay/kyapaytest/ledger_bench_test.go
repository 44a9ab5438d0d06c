package kyapaytest

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// longLivedToken mints a pay token and records n charges on it straight in
// the ledger, as if it had been charged n times through the API.
func longLivedToken(b *testing.B, i *Issuer, n int) string {
	tok := i.Mint(kyapay.TypePay, Amount("1000000"))
	jti := TokenID(tok)
	one := kyapay.MustParseAmount("0.01")
	for range n {
		if _, _, _, o := i.charge(jti, one); o != chargeOK {
			b.Fatalf("charge outcome %d", o)
		}
	}
	return tok
}

// serveChargeInProcess runs one charge of 0.01 through the API handler in process
// (no network) and fails unless it succeeds.
func serveChargeInProcess(b *testing.B, h http.Handler, key, tok string) {
	req := httptest.NewRequest(http.MethodPost, ChargePath, strings.NewReader(`{"token":"`+tok+`","chargeAmount":"0.01"}`))
	req.Header.Set(APIKeyHeader, key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("charge: %d %s", w.Code, w.Body)
	}
}

// BenchmarkFakeChargeNthPaired times, in each iteration, the first charge
// of a fresh token and then a charge of a token already charged 10,000
// times, both through the fake API's handler in process, and reports the
// median per-pair ratio as "nth/first", with the median time of each
// ("first-ns", "nth-ns"). A charge that is O(1) in the token's history
// gives a ratio of about 1. (A charge that copies the history also slows
// the first charge, through the garbage collector, so compare the times
// across versions too.)
func BenchmarkFakeChargeNthPaired(b *testing.B) {
	i := NewIssuer()
	defer i.Close()
	h := i.srv.Config.Handler
	long := longLivedToken(b, i, 10_000)
	var ratios, firsts, nths []float64
	for b.Loop() {
		b.StopTimer()
		fresh := i.Mint(kyapay.TypePay)
		b.StartTimer()
		t0 := time.Now()
		serveChargeInProcess(b, h, i.APIKey(), fresh)
		t1 := time.Now()
		serveChargeInProcess(b, h, i.APIKey(), long)
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
		firsts = append(firsts, float64(t1.Sub(t0)))
		nths = append(nths, float64(t2.Sub(t1)))
	}
	b.ReportMetric(median(ratios), "nth/first")
	b.ReportMetric(median(firsts), "first-ns")
	b.ReportMetric(median(nths), "nth-ns")
}

// BenchmarkFakeChargesPagePaired times, in each iteration, the first page
// (100 entries) of the charges of a token charged 100 times and then of a
// token charged 10,000 times, and reports the median per-pair ratio as
// "long/short". A listing that copies only the page gives about 1.
func BenchmarkFakeChargesPagePaired(b *testing.B) {
	i := NewIssuer()
	defer i.Close()
	h := i.srv.Config.Handler
	short := TokenID(longLivedToken(b, i, 100))
	long := TokenID(longLivedToken(b, i, 10_000))
	list := func(jti string) {
		req := httptest.NewRequest(http.MethodGet, ChargesPathPrefix+jti+"/charges?size=100", nil)
		req.Header.Set(APIKeyHeader, i.APIKey())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("charges: %d %s", w.Code, w.Body)
		}
	}
	ratios := make([]float64, 0, 1024)
	for b.Loop() {
		t0 := time.Now()
		list(short)
		t1 := time.Now()
		list(long)
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	b.ReportMetric(median(ratios), "long/short")
}

// median sorts xs and returns its middle element.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}
