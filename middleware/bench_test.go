package middleware_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// These benchmarks are read side by side from one run (see BENCHMARKS.md):
//
//   - BareHandler: the handler alone, called in-process: the floor.
//   - KYARouteCold: an identity route with the verified-token cache off, so
//     every request verifies the ES256 signature.
//   - KYARouteCached: the same route with the cache on (the token is
//     reused, as an agent does across a session).
//   - RawKeepAlivePOST: one keep-alive POST of a charge-sized JSON body to a
//     loopback server that answers a static receipt: the floor of any
//     charge call.
//   - PaidRoute: a ChargeBefore route (cached verify + one charge through
//     charge.Client to that same static server + handler).

var benchBody = []byte("ok")

func benchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(benchBody) })
}

// discardWriter is a reusable ResponseWriter that keeps nothing, so the
// benchmarks measure the middleware and not httptest.ResponseRecorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func runRoute(b *testing.B, h http.Handler, token string) {
	b.Helper()
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("skyfire-pay-id", token)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != 0 && w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

func BenchmarkBareHandler(b *testing.B) {
	runRoute(b, benchHandler(), "unused")
}

func benchVerifier(b *testing.B, iss *kyapaytest.Issuer, cacheSize int) *kyapay.Verifier {
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   kyapaytest.DefaultAudience,
		CacheSize:  cacheSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

func benchKYA(b *testing.B, cacheSize int) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	m, err := middleware.New(middleware.Config{Verifier: benchVerifier(b, iss, cacheSize)})
	if err != nil {
		b.Fatal(err)
	}
	runRoute(b, m.MustWrap(benchHandler(), middleware.Identity()), iss.Mint(kyapay.TypeKYA))
}

func BenchmarkKYARouteCold(b *testing.B)   { benchKYA(b, -1) }
func BenchmarkKYARouteCached(b *testing.B) { benchKYA(b, 0) }

// staticChargeServer answers every request with a fixed receipt.
func staticChargeServer(b *testing.B) *httptest.Server {
	receipt := []byte(`{"amountCharged":"0.01","remainingBalance":"4.99"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(receipt)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func BenchmarkRawKeepAlivePOST(b *testing.B) {
	srv := staticChargeServer(b)
	post := rawPOST(b, srv)
	b.ReportAllocs()
	for b.Loop() {
		post()
	}
}

// rawPOST returns a function doing one keep-alive POST of a charge-sized
// body (about a token plus chargeAmount) to srv, reading the answer.
func rawPOST(b *testing.B, srv *httptest.Server) func() {
	client := srv.Client()
	body := bytes.Repeat([]byte("x"), 700)
	url := srv.URL + "/api/v1/tokens/charge"
	return func() {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("skyfire-api-key", "k")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkPaidRoute(b *testing.B) {
	h, token, _ := paidRoute(b)
	runRoute(b, h, token)
}

// paidRoute builds a 0.01 USD charge-before route whose charges go to a
// static loopback charge server, and returns it with a pay token and that
// server.
func paidRoute(b *testing.B) (http.Handler, string, *httptest.Server) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	srv := staticChargeServer(b)
	cc, err := charge.New(charge.Config{BaseURL: srv.URL, APIKey: "k", HTTPClient: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: benchVerifier(b, iss, 0), Charger: cc, DepletedCacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	return m.MustWrap(benchHandler(), middleware.Pay(middleware.FixedPrice("0.01"))), iss.Mint(kyapay.TypePay), srv
}

// BenchmarkPaidRoutePaired times, in each iteration, one raw keep-alive
// POST to the static charge server and then one paid-route request charging
// through the same server, and reports the median per-pair ratio as
// "paid/rawPOST": what the middleware adds on top of the unavoidable round
// trip.
func BenchmarkPaidRoutePaired(b *testing.B) {
	h, token, srv := paidRoute(b)
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("skyfire-pay-id", token)
	w := &discardWriter{h: make(http.Header)}
	post := rawPOST(b, srv)
	ratios := make([]float64, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		post()
		t1 := time.Now()
		w.code = 0
		h.ServeHTTP(w, r)
		t2 := time.Now()
		if w.code != 0 && w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "paid/rawPOST")
}

// medianRatio returns the median of ratios (sorted in place).
func medianRatio(ratios []float64) float64 {
	sort.Float64s(ratios)
	return ratios[len(ratios)/2]
}

// loopbackGet returns a function doing one keep-alive GET of url with the
// token header, failing the benchmark on any status but 200.
func loopbackGet(b *testing.B, client *http.Client, url string) func(token string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	return func(token string) {
		req.Header.Set(kyapay.HeaderName, token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// benchKYALoopbackPaired serves the bare handler and the same handler
// behind an identity route on two loopback servers, and times, in each
// iteration, one keep-alive GET to each with the same token header (drawn
// from a pool of n distinct kya tokens, all verified once beforehand so
// every request is a cache hit). It reports the median per-pair time ratio
// "kya/bare" and its inverse "throughput", the fraction of the bare
// handler's request rate the gated route keeps.
func benchKYALoopbackPaired(b *testing.B, n int) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	m, err := middleware.New(middleware.Config{Verifier: benchVerifier(b, iss, 0)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	bare := httptest.NewServer(benchHandler())
	b.Cleanup(bare.Close)
	gated := httptest.NewServer(m.MustWrap(benchHandler(), middleware.Identity()))
	b.Cleanup(gated.Close)
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = iss.Mint(kyapay.TypeKYA)
		// Each token arrives in its own buffer, as a server receives it.
		tokens[i] = string([]byte(tokens[i]))
	}
	getBare := loopbackGet(b, bare.Client(), bare.URL)
	getGated := loopbackGet(b, gated.Client(), gated.URL)
	for _, t := range tokens {
		getGated(t) // warm the verified-token cache
	}
	ratios := make([]float64, 0, b.N)
	i := 0
	for b.Loop() {
		tok := tokens[i%n]
		i++
		t0 := time.Now()
		getBare(tok)
		t1 := time.Now()
		getGated(tok)
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	r := medianRatio(ratios)
	b.ReportMetric(r, "kya/bare")
	b.ReportMetric(1/r, "throughput")
}

// BenchmarkKYALoopbackPaired: one repeated token.
func BenchmarkKYALoopbackPaired(b *testing.B) { benchKYALoopbackPaired(b, 1) }

// BenchmarkKYAPoolLoopbackPaired: 10,000 distinct cached tokens.
func BenchmarkKYAPoolLoopbackPaired(b *testing.B) { benchKYALoopbackPaired(b, 10_000) }

// BenchmarkObserverPaired times the cached identity route in-process with
// no Observer and with a no-op Observer, back to back, and reports the
// median per-pair ratio "observed/unobserved": what building and handing
// over the events costs when something listens. With no Observer (and the
// default discarding logger) no Event is built at all.
func BenchmarkObserverPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	v := benchVerifier(b, iss, 0)
	plain, err := middleware.New(middleware.Config{Verifier: v})
	if err != nil {
		b.Fatal(err)
	}
	observed, err := middleware.New(middleware.Config{Verifier: v, Observer: middleware.ObserverFunc(func(context.Context, middleware.Event) {})})
	if err != nil {
		b.Fatal(err)
	}
	hPlain := plain.MustWrap(benchHandler(), middleware.Identity())
	hObserved := observed.MustWrap(benchHandler(), middleware.Identity())
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("skyfire-pay-id", iss.Mint(kyapay.TypeKYA))
	w := &discardWriter{h: make(http.Header)}
	hPlain.ServeHTTP(w, r)
	const block = 100
	ratios := make([]float64, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		for range block {
			hPlain.ServeHTTP(w, r)
		}
		t1 := time.Now()
		for range block {
			hObserved.ServeHTTP(w, r)
		}
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	b.ReportMetric(medianRatio(ratios), "observed/unobserved")
}
