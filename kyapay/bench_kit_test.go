package kyapay_test

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// These benchmarks run the verifier the way a seller runs it: keys come
// from a real JWKS cache that fetched them from the fake issuer over
// loopback, and, unless a benchmark says otherwise, time comes from
// time.Now.

// poolSize is the number of distinct tokens in the pool benchmarks.
const poolSize = 10_000

// asRunVerifier returns a verifier fed by a JWKS cache of iss, with the
// real clock when clock is nil. Its cache holds the whole pool and more.
func asRunVerifier(b *testing.B, iss *kyapaytest.Issuer, clock func() time.Time) *kyapay.Verifier {
	b.Helper()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   kyapaytest.DefaultAudience,
		ServiceID:  kyapaytest.DefaultServiceID,
		Env:        kyapay.EnvProduction,
		CacheSize:  2 * poolSize,
		Clock:      clock,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

// warm verifies every token once, so later calls are cache hits. Each
// call gets its own copy of the token, as each request's header value is
// its own string.
func warm(b *testing.B, v *kyapay.Verifier, toks ...string) {
	b.Helper()
	for _, tok := range toks {
		if _, err := v.Verify(context.Background(), strings.Clone(tok)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCachedHit(b *testing.B, clock func() time.Time) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	v := asRunVerifier(b, iss, clock)
	tok := iss.Mint(kyapay.TypeKYAPay)
	warm(b, v, tok)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedAsRun is a verified-token cache hit with the real
// clock and the real JWKS cache: what a seller's request pays.
func BenchmarkVerifyCachedAsRun(b *testing.B) { benchCachedHit(b, nil) }

// BenchmarkVerifyCachedAsRunFixedClock is the same with a fixed clock, to
// show what time.Now costs.
func BenchmarkVerifyCachedAsRunFixedClock(b *testing.B) {
	now := time.Now()
	benchCachedHit(b, func() time.Time { return now })
}

// pairedBlocks times, in each iteration, a block of k calls of base and
// then a block of k calls of op, and reports the median of the per-block
// ratios op/base under unit, with each side's median ns per call. Blocks
// rather than single calls keep the timer's own cost out of operations
// that take tens of nanoseconds; pairing cancels the drift of a shared
// machine. prepare, if not nil, runs before each pair of blocks, outside
// their timing, with the index of the block's first call.
func pairedBlocks(b *testing.B, k int, unit string, prepare func(i int), base, op func(i int)) {
	b.Helper()
	var ratios, baseNs, opNs []float64
	i := 0
	for b.Loop() {
		if prepare != nil {
			prepare(i) // outside the timed blocks; ns/op includes it
		}
		t0 := time.Now()
		for j := 0; j < k; j++ {
			base(i + j)
		}
		t1 := time.Now()
		for j := 0; j < k; j++ {
			op(i + j)
		}
		t2 := time.Now()
		i += k
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
		baseNs = append(baseNs, float64(t1.Sub(t0))/float64(k))
		opNs = append(opNs, float64(t2.Sub(t1))/float64(k))
	}
	median := func(x []float64) float64 { sort.Float64s(x); return x[len(x)/2] }
	b.ReportMetric(median(ratios), unit)
	b.ReportMetric(median(baseNs), "base-ns/call")
	b.ReportMetric(median(opNs), "op-ns/call")
}

// BenchmarkVerifyCachedClockPaired pairs a cache hit with a fixed clock
// (base) and the same hit with the real clock (op), both with the real
// JWKS cache, and reports realclock/fixedclock.
func BenchmarkVerifyCachedClockPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	now := time.Now()
	fixed := asRunVerifier(b, iss, func() time.Time { return now })
	real := asRunVerifier(b, iss, nil)
	tok := iss.Mint(kyapay.TypeKYAPay)
	warm(b, fixed, tok)
	warm(b, real, tok)
	ctx := context.Background()
	pairedBlocks(b, 1000, "realclock/fixedclock", nil,
		func(int) {
			if _, err := fixed.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		},
		func(int) {
			if _, err := real.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		})
}

// BenchmarkVerifyCachedPoolPaired pairs one repeated token (base) with a
// pool of 10,000 distinct valid tokens visited in a shuffled order (op),
// every call a cache hit, on one verifier with the real clock and the
// real JWKS cache, and reports pool/one. As in a server, where the header
// value was just read off the connection, each call gets its token in a
// buffer written just before the block; what the pool adds is the cache
// entries themselves, spread over a working set far larger than the CPU
// caches.
func BenchmarkVerifyCachedPoolPaired(b *testing.B) {
	iss := kyapaytest.NewIssuer()
	b.Cleanup(iss.Close)
	v := asRunVerifier(b, iss, nil)
	pool := make([]string, poolSize)
	for i := range pool {
		pool[i] = iss.Mint(kyapay.TypeKYAPay)
	}
	one := iss.Mint(kyapay.TypeKYAPay)
	warm(b, v, pool...)
	warm(b, v, one)
	order := rand.New(rand.NewPCG(1, 2)).Perm(poolSize)
	const k = 100
	// received holds this block's tokens; the verifier does not keep a
	// token it finds in its cache, so the buffers are reused.
	var received [k][]byte
	var oneBuf []byte
	ctx := context.Background()
	pairedBlocks(b, k, "pool/one",
		func(i int) {
			oneBuf = append(oneBuf[:0], one...)
			for j := range received {
				received[j] = append(received[j][:0], pool[order[(i+j)%poolSize]]...)
			}
		},
		func(int) {
			if _, err := v.Verify(ctx, unsafe.String(unsafe.SliceData(oneBuf), len(oneBuf))); err != nil {
				b.Fatal(err)
			}
		},
		func(i int) {
			tok := received[i%k]
			if _, err := v.Verify(ctx, unsafe.String(unsafe.SliceData(tok), len(tok))); err != nil {
				b.Fatal(err)
			}
		})
}
