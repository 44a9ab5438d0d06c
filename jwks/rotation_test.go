package jwks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestNewKIDRightAfterFetch is the rotation scenario: the issuer starts
// signing with a new kid right after the cache's startup fetch. Tokens with
// the new kid are refused only until NewKIDInterval has passed since that
// fetch (not UnknownKIDInterval), and then a storm of them causes exactly
// one fetch and every caller gets the key.
func TestNewKIDRightAfterFetch(t *testing.T) {
	a, b := genKey(t), genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)
	startup := clk.Now()

	// The issuer rotates at once.
	srv.set(http.StatusOK, setJSON(t, ecJWK(t, "A", &a.PublicKey), ecJWK(t, "B", &b.PublicKey)))
	clk.Advance(time.Second)
	if _, err := c.Key(context.Background(), testIssuer, "B"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Key(B) 1 s after the startup fetch: err = %v; want ErrKeyNotFound without a fetch", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("got %d fetches within NewKIDInterval; want only the startup fetch", got)
	}
	ev.none(t)

	// Asking for B before any fetch could have seen it does not count as a
	// miss: at NewKIDInterval after the startup fetch B is fetched.
	clk.Advance(DefaultNewKIDInterval - time.Second)
	const n = 1000
	keys, errs := storm(c, n, "B")
	for i := range n {
		if errs[i] != nil || !sameKey(keys[i], &b.PublicKey) {
			t.Fatalf("call %d, %v after the startup fetch: Key(B) = %v, %v; want key B", i, clk.Now().Sub(startup), keys[i], errs[i])
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("storm for the new kid caused %d fetches; want exactly 1", got-1)
	}
	if e := ev.next(t); e.Reason != ReasonUnknownKID || e.Keys != 2 {
		t.Errorf("unexpected event %+v", e)
	}
	if got := clk.Now().Sub(startup); got > 5*time.Second {
		t.Errorf("first acceptance %v after the startup fetch; want <= 5 s", got)
	}
}

// TestMissedKIDWaitsUnknownKIDInterval: a kid a successful fetch came back
// without is not "new" any more; it waits the long interval.
func TestMissedKIDWaitsUnknownKIDInterval(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)

	clk.Advance(DefaultNewKIDInterval)
	if _, err := c.Key(context.Background(), testIssuer, "nope"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Key(nope) err = %v; want ErrKeyNotFound", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("a new kid past NewKIDInterval caused %d fetches; want 1", got-1)
	}
	ev.next(t)
	clk.Advance(DefaultNewKIDInterval)
	if _, err := c.Key(context.Background(), testIssuer, "nope"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Key(nope) err = %v; want ErrKeyNotFound", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("a missed kid refetched after %v; want no fetch before UnknownKIDInterval", DefaultNewKIDInterval)
	}
	clk.Advance(DefaultUnknownKIDInterval - DefaultNewKIDInterval)
	if _, err := c.Key(context.Background(), testIssuer, "nope"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Key(nope) err = %v; want ErrKeyNotFound", err)
	}
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("a missed kid past UnknownKIDInterval caused %d fetches; want 1", got-2)
	}
}

// TestRandomKIDsBoundedPerMinute: tokens naming a fresh random kid every
// second for ten minutes cause at most MaxFetchesPerMinute fetches in any
// minute.
func TestRandomKIDsBoundedPerMinute(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)

	var fetchedAt []time.Time
	for i := range 600 {
		clk.Advance(time.Second)
		before := srv.hits.Load()
		if _, err := c.Key(context.Background(), testIssuer, fmt.Sprintf("random-%d", i)); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("Key(random-%d) err = %v; want ErrKeyNotFound", i, err)
		}
		if srv.hits.Load() != before {
			fetchedAt = append(fetchedAt, clk.Now())
		}
	}
	for i := range fetchedAt {
		j := i
		for j < len(fetchedAt) && fetchedAt[j].Sub(fetchedAt[i]) < time.Minute {
			j++
		}
		if j-i > DefaultMaxFetchesPerMinute {
			t.Fatalf("%d fetches within a minute from %v; want at most %d", j-i, fetchedAt[i], DefaultMaxFetchesPerMinute)
		}
	}
	// The bound is reached, not merely respected by fetching rarely.
	if len(fetchedAt) < 10*DefaultMaxFetchesPerMinute-1 {
		t.Errorf("only %d fetches in 10 minutes of new kids; want about %d", len(fetchedAt), 10*DefaultMaxFetchesPerMinute)
	}
}

// TestNewKIDIntervalConfigurable: the window follows the config and is
// capped by UnknownKIDInterval.
func TestNewKIDIntervalConfigurable(t *testing.T) {
	for _, tt := range []struct {
		name          string
		newKID, unkID time.Duration
		want          time.Duration
	}{
		{"default", 0, 0, DefaultNewKIDInterval},
		{"shorter", 2 * time.Second, 0, 2 * time.Second},
		{"capped", time.Minute, 10 * time.Second, 10 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := genKey(t), genKey(t)
			srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
			clk, ev := newFakeClock(), newEvents()
			cfg := testConfig(srv, clk, ev)
			cfg.FailFast = true
			cfg.NewKIDInterval, cfg.UnknownKIDInterval = tt.newKID, tt.unkID
			c := mustNew(t, cfg)
			srv.set(http.StatusOK, setJSON(t, ecJWK(t, "A", &a.PublicKey), ecJWK(t, "B", &b.PublicKey)))
			clk.Advance(tt.want - time.Millisecond)
			if _, err := c.Key(context.Background(), testIssuer, "B"); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("Key(B) just before the window: err = %v; want ErrKeyNotFound", err)
			}
			clk.Advance(time.Millisecond)
			if k, err := c.Key(context.Background(), testIssuer, "B"); err != nil || !sameKey(k, &b.PublicKey) {
				t.Fatalf("Key(B) at the window: %v, %v; want key B", k, err)
			}
		})
	}
	if _, err := New(context.Background(), Config{Issuers: map[string]string{testIssuer: "https://a.test/"}, MaxFetchesPerMinute: -1}); err == nil {
		t.Error("New accepted a negative MaxFetchesPerMinute")
	}
}

// TestPeekKey: PeekKey answers from the current set only, never fetches
// and never allocates.
func TestPeekKey(t *testing.T) {
	a, b := genKey(t), genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey), ecJWK(t, "B", &b.PublicKey)))
	srv.block = make(chan struct{})
	clk, ev := newFakeClock(), newEvents()
	c := mustNew(t, testConfig(srv, clk, ev))
	if _, ok := c.PeekKey(testIssuer, "A"); ok {
		t.Error("PeekKey before the first fetch found a key")
	}
	srv.mu.Lock()
	close(srv.block)
	srv.block = nil
	srv.mu.Unlock()
	ev.next(t)
	if k, ok := c.PeekKey(testIssuer, "A"); !ok || !sameKey(k, &a.PublicKey) {
		t.Fatalf("PeekKey(A) = %v, %v; want key A", k, ok)
	}
	before := srv.hits.Load()
	for _, q := range [][2]string{{testIssuer, "nope"}, {"https://other.test", "A"}, {testIssuer, ""}} {
		if _, ok := c.PeekKey(q[0], q[1]); ok {
			t.Errorf("PeekKey(%q, %q) found a key", q[0], q[1])
		}
	}
	if srv.hits.Load() != before {
		t.Error("PeekKey fetched")
	}
	allocs := testing.AllocsPerRun(1000, func() { c.PeekKey(testIssuer, "A") })
	if allocs != 0 {
		t.Errorf("PeekKey allocates %v times per call; want 0", allocs)
	}
	// A refresh that finds a key unchanged keeps its pointer.
	kA, _ := c.PeekKey(testIssuer, "A")
	if err := c.Refresh(context.Background(), testIssuer); err != nil {
		t.Fatal(err)
	}
	if k, _ := c.PeekKey(testIssuer, "A"); k != kA {
		t.Error("an unchanged key got a new pointer on refresh")
	}
	// A key removed from the published set is gone after a refresh.
	srv.set(http.StatusOK, setJSON(t, ecJWK(t, "B", &b.PublicKey)))
	if err := c.Refresh(context.Background(), testIssuer); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.PeekKey(testIssuer, "A"); ok {
		t.Error("PeekKey found a key removed from the set")
	}
	c.Close()
	if _, ok := c.PeekKey(testIssuer, "B"); ok {
		t.Error("PeekKey after Close found a key")
	}
}

// redirectPair starts a JWKS server and another loopback server whose
// /jwks redirects to it (another host: another port) and whose /same
// redirects to its own /jwks-here, which serves the set too.
func redirectPair(t *testing.T, body []byte) (target *jwksServer, origin *httptest.Server) {
	t.Helper()
	target = newJWKSServer(t, body)
	origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			http.Redirect(w, r, target.URL, http.StatusFound)
		case "/same":
			http.Redirect(w, r, "/jwks-here", http.StatusFound)
		case "/jwks-here":
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}))
	t.Cleanup(origin.Close)
	return target, origin
}

// TestCrossHostRedirectRefused: a JWKS URL that redirects to another host
// is not followed, with the default client or a supplied one; a redirect
// within the host is.
func TestCrossHostRedirectRefused(t *testing.T) {
	a := genKey(t)
	body := setJSON(t, ecJWK(t, "A", &a.PublicKey))
	for _, supplied := range []bool{false, true} {
		t.Run(fmt.Sprintf("supplied client %v", supplied), func(t *testing.T) {
			target, origin := redirectPair(t, body)
			// The supplied policy sees only redirects that pass the host
			// check: the startup fetch's and Refresh's of same.test.
			var ownCalls atomic.Int32
			var crossHostSeen atomic.Bool
			cfg := Config{Issuers: map[string]string{testIssuer: origin.URL + "/jwks", "https://same.test": origin.URL + "/same"}, noLoop: true}
			if supplied {
				cfg.HTTPClient = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
					ownCalls.Add(1)
					if req.URL.Host != via[0].URL.Host {
						crossHostSeen.Store(true)
					}
					return nil
				}}
			}
			c := mustNew(t, cfg)
			err := c.Refresh(context.Background(), testIssuer)
			if err == nil || !strings.Contains(err.Error(), "another host") {
				t.Errorf("Refresh through a cross-host redirect: err = %v; want a refusal", err)
			}
			if got := target.hits.Load(); got != 0 {
				t.Errorf("the other host got %d requests; want 0", got)
			}
			if err := c.Refresh(context.Background(), "https://same.test"); err != nil {
				t.Errorf("Refresh through a same-host redirect: %v", err)
			}
			if supplied && (ownCalls.Load() == 0 || crossHostSeen.Load()) {
				t.Errorf("the supplied CheckRedirect ran %d times, saw a cross-host redirect: %v; want it run for same-host redirects only",
					ownCalls.Load(), crossHostSeen.Load())
			}
		})
	}
}

// BenchmarkPeekKey is the key check of a verified-token cache hit: no
// clock, no lock.
func BenchmarkPeekKey(b *testing.B) {
	a := genKey(b)
	srv := newJWKSServer(b, setJSON(b, ecJWK(b, "A", &a.PublicKey), ecJWK(b, "B", &genKey(b).PublicKey)))
	c := mustNew(b, Config{Issuers: map[string]string{testIssuer: srv.URL}, FailFast: true})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.PeekKey(testIssuer, "A"); !ok {
			b.Fatal("key A not found")
		}
	}
}

// BenchmarkPeekKeyPaired times, in each iteration, 1,000 Key hits (base)
// and then 1,000 PeekKey calls for the same kid, and reports the median
// per-pair ratio peek/key: the key check of a verified-token cache hit
// against a plain key lookup, whose cost is mostly the clock read.
func BenchmarkPeekKeyPaired(b *testing.B) {
	a := genKey(b)
	srv := newJWKSServer(b, setJSON(b, ecJWK(b, "A", &a.PublicKey), ecJWK(b, "B", &genKey(b).PublicKey)))
	c := mustNew(b, Config{Issuers: map[string]string{testIssuer: srv.URL}, FailFast: true})
	ctx := context.Background()
	const k = 1000
	var ratios []float64
	for b.Loop() {
		t0 := time.Now()
		for range k {
			if _, err := c.Key(ctx, testIssuer, "A"); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for range k {
			if _, ok := c.PeekKey(testIssuer, "A"); !ok {
				b.Fatal("key A not found")
			}
		}
		t2 := time.Now()
		ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "peek/key")
}

// TestLongKIDClipped: a 10 KB kid from a token reaches the error clipped
// to 64 bytes with a length marker.
func TestLongKIDClipped(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	kid := strings.Repeat("k", 10_000)
	_, err := c.Key(context.Background(), testIssuer, kid)
	if !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("err = %v; want ErrKeyNotFound", err)
	}
	if msg := err.Error(); len(msg) > 200 || strings.Contains(msg, strings.Repeat("k", 65)) || !strings.Contains(msg, "…(10000 bytes)") {
		t.Errorf("error not clipped with a marker (%d bytes): %.120s", len(msg), msg)
	}
}
