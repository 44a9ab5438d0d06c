package charge_test

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
)

const (
	benchToken = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleS0xIiwidHlwIjoia3lhLXBheStqd3QifQ." +
		"eyJpc3MiOiJodHRwczovL2FwcC5za3lmaXJlLnh5eiIsInN1YiI6IjNmYTg1ZjY0LTU3MTctNDU2Mi1iM2ZjLTJjOTYzZjY2YWZhNiIsImF1ZCI6IjNmYTg1ZjY0LTU3MTctNDU2Mi1iM2ZjLTJjOTYzZjY2YWZhNyIsImV4cCI6MTc1NjAwMDAwMCwiaWF0IjoxNzU1OTk2NDAwLCJqdGkiOiIzZmE4NWY2NC01NzE3LTQ1NjItYjNmYy0yYzk2M2Y2NmFmYTgiLCJlbnYiOiJwcm9kdWN0aW9uIiwic3NpIjoiM2ZhODVmNjQtNTcxNy00NTYyLWIzZmMtMmM5NjNmNjZhZmE5IiwiYW10IjoiNSIsInZhbCI6NTAwMDAwMCwiY3VyIjoiVVNEIn0." +
		"MEUCIQDx7Wq3Hc2v3n6y5nF7zJ2kq8s9d0f1g2h3j4k5l6m7n8o9pAIgQ1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c2"
	benchResponse = `{"amountCharged":"0.01","remainingBalance":"4.99","transactionId":"tx_0123456789"}`
)

// benchServer is a loopback keep-alive server answering every POST with a
// fixed charge receipt after reading the body.
func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, benchResponse)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkCharge is one Client.Charge against a loopback keep-alive
// server: request building, tracing, headers, limited read and decoding.
func BenchmarkCharge(b *testing.B) {
	srv := benchServer(b)
	c, err := charge.New(charge.Config{BaseURL: srv.URL, APIKey: "sk_bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	amt := kyapay.MustParseAmount("0.01")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Charge(ctx, benchToken, amt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawPOST is the floor for BenchmarkCharge: a bare keep-alive
// http.Client POST of the same body to the same kind of server, reading and
// discarding the same answer.
func BenchmarkRawPOST(b *testing.B) {
	post := rawPOST(b, benchServer(b))
	b.ReportAllocs()
	for b.Loop() {
		post()
	}
}

// rawPOST returns a function doing one bare keep-alive POST of the body
// Charge sends (same token, same amount) to srv, reading and discarding the
// answer: the floor under Charge.
func rawPOST(b *testing.B, srv *httptest.Server) func() {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	body := []byte(`{"token":"` + benchToken + `","chargeAmount":"0.01"}`)
	url := srv.URL + "/api/v1/tokens/charge"
	return func() {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("skyfire-api-key", "sk_bench")
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkChargePaired times, in each iteration, one bare keep-alive POST
// (the floor) and then one Client.Charge of the same body to the same
// server, and reports the median of the per-pair ratios as
// "charge/rawPOST". Pairing cancels the machine's drift, which on a shared
// 2-core VM swings separate runs by 10-20 %.
func BenchmarkChargePaired(b *testing.B) {
	srv := benchServer(b)
	c, err := charge.New(charge.Config{BaseURL: srv.URL, APIKey: "sk_bench"})
	if err != nil {
		b.Fatal(err)
	}
	post := rawPOST(b, srv)
	ctx := context.Background()
	amt := kyapay.MustParseAmount("0.01")
	ratios := make([]float64, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		post()
		t1 := time.Now()
		if _, err := c.Charge(ctx, benchToken, amt); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "charge/rawPOST")
}

// BenchmarkChargeParallel runs Charge from GOMAXPROCS goroutines on one
// shared Client.
func BenchmarkChargeParallel(b *testing.B) {
	srv := benchServer(b)
	c, err := charge.New(charge.Config{BaseURL: srv.URL, APIKey: "sk_bench"})
	if err != nil {
		b.Fatal(err)
	}
	amt := kyapay.MustParseAmount("0.01")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Charge(context.Background(), benchToken, amt); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
