package kyapayredis_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayredis"
)

// These benchmarks are read as ratios from one run: each paired benchmark
// times the baseline and the measured path back to back in every iteration
// and reports the median per-pair ratio.
//
//   - PaidPaired: a paid ChargeBefore request with the Redis store vs the
//     same request with the in-memory store. The charge itself is excluded:
//     the Charger answers at once. Without a key the Redis store costs two
//     round trips (balance read, charge record); with a key (KeyedPaidPaired)
//     two as well (Begin, Finish).
//   - ReplayPaired: a replayed request (Redis store) vs the bare handler.

// instantCharger confirms every charge at once, with a unique transaction
// ID and a large remaining balance.
type instantCharger struct{ n atomic.Int64 }

var hundred = kyapay.MustParseAmount("100")

func (c *instantCharger) Charge(_ context.Context, _ string, amount kyapay.Amount) (charge.Receipt, error) {
	id := c.n.Add(1)
	return charge.Receipt{AmountCharged: amount, RemainingBalance: hundred, HasRemainingBalance: true,
		TransactionID: "tx-" + strconv.FormatInt(id, 10)}, nil
}

func (c *instantCharger) ChargeServicePrice(ctx context.Context, token string) (charge.Receipt, error) {
	return c.Charge(ctx, token, kyapay.MustParseAmount("0.01"))
}

// discardWriter keeps nothing.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

var okBody = []byte("ok")

var bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(okBody) })

// benchSeller returns a paid route on a Middleware with store (nil: the
// default in-memory store) and a pay token.
func benchSeller(b *testing.B, iss *kyapaytest.Issuer, store middleware.Store) http.Handler {
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers: []string{iss.Issuer()}, JWKSURLs: map[string]string{iss.Issuer(): iss.JWKSURL()}, HTTPClient: iss.Client(),
		Audience: kyapaytest.DefaultAudience,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: &instantCharger{}, Store: store, DepletedCacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m.MustWrap(bare, middleware.Pay(middleware.FixedPrice("0.01")))
}

func redisStore(b *testing.B) middleware.Store {
	s, err := kyapayredis.New(sharedRedis(b), kyapayredis.Options{Prefix: newPrefix()})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// serve runs h on r and fails on anything but 200.
func serve(b *testing.B, h http.Handler, w *discardWriter, r *http.Request) {
	w.code = 0
	h.ServeHTTP(w, r)
	if w.code != 0 && w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
}

// paired times base then measured in each iteration and reports the
// median measured/base ratio, and each side's median time.
func paired(b *testing.B, metric string, base, measured func()) {
	ratios := make([]float64, 0, 1024)
	var tb, tm []time.Duration
	for b.Loop() {
		t0 := time.Now()
		base()
		t1 := time.Now()
		measured()
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
		tb, tm = append(tb, t1.Sub(t0)), append(tm, t2.Sub(t1))
	}
	sort.Float64s(ratios)
	sort.Slice(tb, func(i, j int) bool { return tb[i] < tb[j] })
	sort.Slice(tm, func(i, j int) bool { return tm[i] < tm[j] })
	b.ReportMetric(ratios[len(ratios)/2], metric)
	b.ReportMetric(float64(tb[len(tb)/2].Nanoseconds()), "base-ns")
	b.ReportMetric(float64(tm[len(tm)/2].Nanoseconds()), "measured-ns")
}

func paidRequest(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set(kyapay.HeaderName, tok)
	return r
}

func BenchmarkPaidPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	mem, red := benchSeller(b, iss, nil), benchSeller(b, iss, redisStore(b))
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1000000"))
	rm, rr := paidRequest(tok), paidRequest(tok)
	w := &discardWriter{h: http.Header{}}
	serve(b, mem, w, rm)
	serve(b, red, w, rr)
	paired(b, "redis/memory", func() { serve(b, mem, w, rm) }, func() { serve(b, red, w, rr) })
}

func BenchmarkKeyedPaidPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	mem, red := benchSeller(b, iss, nil), benchSeller(b, iss, redisStore(b))
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1000000"))
	rm, rr := paidRequest(tok), paidRequest(tok)
	w := &discardWriter{h: http.Header{}}
	n := 0
	key := func(r *http.Request) *http.Request {
		n++
		r.Header.Set(middleware.IdempotencyKeyHeader, "k"+strconv.Itoa(n))
		return r
	}
	paired(b, "redis/memory", func() { serve(b, mem, w, key(rm)) }, func() { serve(b, red, w, key(rr)) })
}

func BenchmarkReplayPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	red := benchSeller(b, iss, redisStore(b))
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1000000"))
	r := paidRequest(tok)
	r.Header.Set(middleware.IdempotencyKeyHeader, "replayed")
	w := &discardWriter{h: http.Header{}}
	serve(b, red, w, r) // the first request, stored
	rb := paidRequest(tok)
	paired(b, "replay/bare", func() { serve(b, bare, w, rb) }, func() { serve(b, red, w, r) })
}

// BenchmarkReplayMemoryPaired is the replay with the in-memory store, to
// tell the Redis round trip from the gate's own work.
func BenchmarkReplayMemoryPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	mem := benchSeller(b, iss, nil)
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1000000"))
	r := paidRequest(tok)
	r.Header.Set(middleware.IdempotencyKeyHeader, "replayed")
	w := &discardWriter{h: http.Header{}}
	serve(b, mem, w, r)
	rb := paidRequest(tok)
	paired(b, "replay/bare", func() { serve(b, bare, w, rb) }, func() { serve(b, mem, w, r) })
}

// BenchmarkPaidVsPingPaired sets the Redis store's cost against the round
// trip it cannot avoid: a paid request with the Redis store (keyless, two
// scripts) vs one PING on the same client. A ratio near 2 means the store
// costs its two round trips and little else.
func BenchmarkPaidVsPingPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	c := sharedRedis(b)
	s, err := kyapayredis.New(c, kyapayredis.Options{Prefix: newPrefix()})
	if err != nil {
		b.Fatal(err)
	}
	red := benchSeller(b, iss, s)
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1000000"))
	r := paidRequest(tok)
	w := &discardWriter{h: http.Header{}}
	serve(b, red, w, r)
	ctx := context.Background()
	paired(b, "paid/ping", func() {
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}, func() { serve(b, red, w, r) })
}
