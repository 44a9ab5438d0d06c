package kyapaycaddy_test

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// gateway is one Caddy on loopback with one upstream: /plain goes through
// reverse_proxy alone, anything else through kyapay (any token; the
// benchmarks send a repeated kya token) and then the same reverse_proxy.
// Both paths get the same request, token header included.
type gateway struct {
	e      *env
	client *http.Client
	token  string
}

func newGateway(b *testing.B) *gateway {
	e := newEnv(b)
	e.upstream.quiet = true
	e.start(b, `kyapay /kya {
		types kya
	}
	reverse_proxy {up}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	return &gateway{e: e, client: client, token: e.iss.Mint(kyapay.TypeKYA)}
}

// get sends one request and reads the whole answer.
func (g *gateway) get(b *testing.B, path string) bool {
	req, _ := http.NewRequest(http.MethodGet, "http://"+g.e.addr+path, nil)
	req.Header.Set(kyapay.HeaderName, g.token)
	resp, err := g.client.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s: status %d", path, resp.StatusCode)
		return false
	}
	return true
}

// BenchmarkGatewayPaired measures both paths in the same time window: each
// client goroutine alternates a request through reverse_proxy alone and one
// through kyapay and reverse_proxy, so the noise of a shared machine falls
// on both alike. It reports the mean latency of each path and their ratio
// (kyapay/proxy); ns/op is the time of one pair.
func BenchmarkGatewayPaired(b *testing.B) {
	g := newGateway(b)
	var plainNs, kyaNs, n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		first := true
		for pb.Next() {
			// Alternate which path goes first, so neither always meets a
			// warmer connection.
			paths := [2]string{"/plain", "/kya"}
			if !first {
				paths = [2]string{"/kya", "/plain"}
			}
			first = !first
			for _, p := range paths {
				start := time.Now()
				if !g.get(b, p) {
					return
				}
				d := time.Since(start).Nanoseconds()
				if p == "/plain" {
					plainNs.Add(d)
				} else {
					kyaNs.Add(d)
				}
			}
			n.Add(1)
		}
	})
	b.StopTimer()
	if c := n.Load(); c > 0 {
		p, k := float64(plainNs.Load())/float64(c), float64(kyaNs.Load())/float64(c)
		b.ReportMetric(p, "proxy-ns/req")
		b.ReportMetric(k, "kyapay-ns/req")
		b.ReportMetric(k/p, "ratio")
	}
}

// BenchmarkGateway runs each path on its own, for allocations per request.
func BenchmarkGateway(b *testing.B) {
	g := newGateway(b)
	for _, c := range []struct{ name, path string }{{"reverse_proxy", "/plain"}, {"kyapay", "/kya"}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !g.get(b, c.path) {
						return
					}
				}
			})
		})
	}
}
