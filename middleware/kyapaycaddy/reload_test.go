package kyapaycaddy_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// jwksLoop is in the stack of each running Verifier's key refresh.
const jwksLoop = "kyapay-go/jwks.(*Cache).loop("

// goroutinesIn counts the goroutines whose stack contains fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn)
		}
		buf = make([]byte, 2*len(buf))
	}
}

// reconcileLoop is in the stack of each running background reconciliation
// of a gate (started by its first paid request with an Idempotency-Key,
// or with a shared store).
const reconcileLoop = "kyapay-go/middleware.(*Middleware).reconcileLoop("

// loops returns the number of running key refresh loops once it equals
// want, or after a bound: a loop just started may not be running yet, and
// one just stopped may still be unwinding.
func loops(want int) int { return running(jwksLoop, want) }

// reconcilers is loops for the gates' reconciliation loops.
func reconcilers(want int) int { return running(reconcileLoop, want) }

// running returns the number of goroutines in fn once it equals want, or
// after a bound.
func running(fn string, want int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := goroutinesIn(fn)
	for n != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		n = goroutinesIn(fn)
	}
	return n
}

// settle waits, up to a bound, for the number of goroutines to drop to at
// most want (goroutines of closed connections end asynchronously), and
// returns the last count.
func settle(want int) int {
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// steady returns the number of goroutines once it has stopped changing
// for a while (or after a bound).
func steady() int {
	deadline := time.Now().Add(5 * time.Second)
	n, same := runtime.NumGoroutine(), 0
	for same < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// Handlers with equal settings share one Verifier; an unchanged Verifier
// (and its cached keys) survives a reload.
func TestSharedVerifier(t *testing.T) {
	e := newEnv(t)
	site := `kyapay /a 0.01
	kyapay /b {
		identity email
	}
	kyapay /c {
		mcp
	}
	kyapay /d {
		seller_id seller-2
	}
	respond "ok" 200`
	e.start(t, site)
	if n := loops(2); n != 2 {
		t.Fatalf("%d key refresh loops for two distinct trust settings; want 2", n)
	}
	// A request through each Verifier waits for its first key fetch.
	tok := e.iss.Mint(kyapay.TypeKYAPay)
	for _, p := range []string{"/a", "/b"} {
		if res := e.get(t, p, tok); res.status != http.StatusOK {
			t.Fatalf("%s: got %d %q", p, res.status, res.body)
		}
	}
	if res := e.get(t, "/d", e.iss.Mint(kyapay.TypeKYA, kyapaytest.Audience("seller-2"))); res.status != http.StatusOK {
		t.Fatalf("/d: got %d %q", res.status, res.body)
	}
	fetches := e.iss.JWKSFetches()
	if fetches != 2 {
		t.Errorf("JWKS fetched %d times; want 2 (one per Verifier)", fetches)
	}
	if err := load(e.caddyfile(site)); err != nil {
		t.Fatal(err)
	}
	if res := e.getAfterReload(t, "/a", e.iss.Mint(kyapay.TypePay)); res.status != http.StatusOK {
		t.Fatalf("after reload: got %d", res.status)
	}
	if n := loops(2); n != 2 {
		t.Errorf("%d key refresh loops after a reload; want 2", n)
	}
	if got := e.iss.JWKSFetches(); got != fetches {
		t.Errorf("JWKS fetched %d times after a reload of the same settings; want %d (keys kept)", got, fetches)
	}
}

// Many reloads, each changing the trust settings, leave exactly one
// Verifier running and no gate's reconciliation, and stopping Caddy leaves
// no goroutine behind: the gates are closed, and the Verifiers' key
// refresh and the charge clients' connections are stopped on Cleanup. (The routes answer with respond rather than reverse_proxy:
// Caddy's reverse_proxy keeps its upstream connections open after a
// reload until their idle timeout, which is not this module's to close.)
func TestReloadNoLeak(t *testing.T) {
	e := newEnv(t)
	tr := e.client.Transport.(*http.Transport)
	site := func(i int) string {
		return fmt.Sprintf(`kyapay /paid {
		price 0.01
		service_id svc-%d
	}
	kyapay /mcp {
		service_id svc-%d
		mcp {
			tool search 0.01
		}
	}
	respond "ok" 200`, i, i)
	}
	// Warm up: whatever Caddy starts once per process is not a leak.
	e.start(t, site(0))
	if res := e.get(t, "/paid", e.iss.Mint(kyapay.TypePay, kyapayServiceID(0))); res.status != http.StatusOK {
		t.Fatalf("got %d %q", res.status, res.body)
	}
	_ = caddy.Stop()
	tr.CloseIdleConnections()
	base := steady()

	const reloads = 60
	for i := 1; i <= reloads; i++ {
		if err := load(e.caddyfile(site(i))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if n := loops(1); n != 1 {
			t.Fatalf("reload %d: %d key refresh loops; want 1", i, n)
		}
		if n := reconcilers(0); n != 0 {
			t.Fatalf("reload %d: %d reconciliation loops left by the replaced config; want 0", i, n)
		}
		if i%10 == 0 {
			// Charge through the new config, so its charge client holds a
			// connection when the next reload releases it; the
			// Idempotency-Key starts its gate's reconciliation.
			if res := e.getAfterReload(t, "/paid", e.iss.Mint(kyapay.TypePay, kyapayServiceID(i)),
				"Idempotency-Key", fmt.Sprintf("k-%d", i)); res.status != http.StatusOK {
				t.Fatalf("reload %d: got %d %q", i, res.status, res.body)
			}
			if n := reconcilers(1); n != 1 {
				t.Fatalf("reload %d: %d reconciliation loops after an idempotent request; want 1", i, n)
			}
		}
	}
	if n := e.iss.ChargeCount(); n != 1+reloads/10 {
		t.Errorf("charges = %d; want %d", n, 1+reloads/10)
	}
	_ = caddy.Stop()
	tr.CloseIdleConnections()
	if n := loops(0); n != 0 {
		t.Errorf("%d key refresh loops after Stop; want 0", n)
	}
	if n := reconcilers(0); n != 0 {
		t.Errorf("%d reconciliation loops after Stop; want 0", n)
	}
	if n := settle(base); n > base {
		t.Errorf("%d goroutines after %d reloads and Stop; %d before", n, reloads, base)
		buf := make([]byte, 1<<20)
		t.Logf("%s", buf[:runtime.Stack(buf, true)])
	}
}
