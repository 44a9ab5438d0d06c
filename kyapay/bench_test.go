package kyapay

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"sort"
	"testing"
	"time"
)

// The three benchmarks below are meant to be read side by side from one
// run: BenchmarkECDSAVerifyFloor is raw crypto/ecdsa.Verify on P-256 with a
// precomputed digest, the cost no verifier can go below; the other two are
// a full Verify of a kya-pay token without and with the verified-token
// cache.

func BenchmarkECDSAVerifyFloor(b *testing.B) {
	d := sha256.Sum256([]byte("kyapay benchmark signing input"))
	r, s, err := ecdsa.Sign(rand.Reader, testKey, d[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &testKey.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.Verify(pub, d[:], r, s) {
			b.Fatal("verify failed")
		}
	}
}

func benchToken() string {
	return mint(testKey, currentHeader("kya-pay+jwt"), with(currentPay(), "hid", map[string]any{"email": "buyer@example.com", "verified": true}))
}

func BenchmarkVerifyCold(b *testing.B) {
	v := newTestVerifier(b, func(c *VerifierConfig) { c.CacheSize = -1 })
	tok := benchToken()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	v := newTestVerifier(b, nil)
	tok := benchToken()
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyColdPaired times, in each iteration, one raw
// ecdsa.Verify (the floor) and then one cold Verify, and reports the median
// of the per-pair ratios as "cold/floor". Pairing cancels the machine's
// drift, which on a shared 2-core VM swings separate runs by 10-20 %.
func BenchmarkVerifyColdPaired(b *testing.B) {
	v := newTestVerifier(b, func(c *VerifierConfig) { c.CacheSize = -1 })
	tok := benchToken()
	ctx := context.Background()
	d := sha256.Sum256([]byte("kyapay benchmark signing input"))
	r, s, err := ecdsa.Sign(rand.Reader, testKey, d[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &testKey.PublicKey
	ratios := make([]float64, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if !ecdsa.Verify(pub, d[:], r, s) {
			b.Fatal("floor failed")
		}
		t1 := time.Now()
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "cold/floor")
}

// BenchmarkVerifyCachedParallel is a cache hit from every core at once,
// over 1,000 distinct tokens, where the cache's locking shows.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	v := newTestVerifier(b, nil)
	toks := make([]string, 1000)
	for i := range toks {
		toks[i] = mint(testKey, currentHeader("kya-pay+jwt"), with(currentPay(), "jti", newUUID()))
		if _, err := v.Verify(context.Background(), toks[i]); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Verify(ctx, toks[i%len(toks)]); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}
