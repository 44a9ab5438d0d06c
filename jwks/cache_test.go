package jwks

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewConfigErrors(t *testing.T) {
	srv := newJWKSServer(t, nil)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no issuers", Config{}},
		{"empty issuer", Config{Issuers: map[string]string{"": srv.URL}}},
		{"relative URL", Config{Issuers: map[string]string{testIssuer: "/.well-known/jwks.json"}}},
		{"ftp URL", Config{Issuers: map[string]string{testIssuer: "ftp://example.com/jwks.json"}}},
		{"no host", Config{Issuers: map[string]string{testIssuer: "https:///jwks.json"}}},
		{"bad URL", Config{Issuers: map[string]string{testIssuer: "https://[::1"}}},
		{"negative TTL", Config{Issuers: map[string]string{testIssuer: srv.URL}, TTL: -time.Second}},
		{"negative FetchTimeout", Config{Issuers: map[string]string{testIssuer: srv.URL}, FetchTimeout: -1}},
		{"negative MaxStale", Config{Issuers: map[string]string{testIssuer: srv.URL}, MaxStale: -1}},
		{"negative UnknownKIDInterval", Config{Issuers: map[string]string{testIssuer: srv.URL}, UnknownKIDInterval: -1}},
		{"MinTTL above MaxTTL", Config{Issuers: map[string]string{testIssuer: srv.URL}, MinTTL: 2 * time.Hour, MaxTTL: time.Hour}},
		{"MinTTL above default MaxTTL", Config{Issuers: map[string]string{testIssuer: srv.URL}, MinTTL: 48 * time.Hour}},
		{"negative MaxBodyBytes", Config{Issuers: map[string]string{testIssuer: srv.URL}, MaxBodyBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(context.Background(), tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded; want error")
			}
			if !strings.HasPrefix(err.Error(), "jwks: ") {
				t.Errorf("error %q lacks the jwks: prefix", err)
			}
		})
	}
	if got := srv.hits.Load(); got != 0 {
		t.Errorf("got %d fetches for invalid configs; want 0", got)
	}
}

func TestDefaults(t *testing.T) {
	s, err := (&Config{Issuers: map[string]string{testIssuer: "https://example.com/jwks.json"}}).settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.fetchTimeout != 10*time.Second || s.ttl != time.Hour || s.minTTL != time.Minute ||
		s.maxTTL != 24*time.Hour || s.unknownKIDInterval != 30*time.Second || s.maxStale != 24*time.Hour ||
		s.maxBodyBytes != 1<<20 || s.clock == nil || s.client == nil || !s.ownClient {
		t.Errorf("unexpected defaults: %+v", s)
	}
	if s.client.Timeout != 10*time.Second {
		t.Errorf("got default client timeout %v; want 10s", s.client.Timeout)
	}
}

func TestKeyHitAndAcceptHeader(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	e := ev.next(t)
	if e.Err != nil || e.Reason != ReasonStartup || e.Keys != 1 || e.Skipped != 0 || e.Issuer != testIssuer || e.URL != srv.URL || !e.At.Equal(clk.Now()) || e.TTL != time.Hour {
		t.Errorf("unexpected startup event %+v", e)
	}
	got, err := c.Key(context.Background(), testIssuer, "A")
	if err != nil || !sameKey(got, &a.PublicKey) {
		t.Fatalf("Key = %v, %v; want key A", got, err)
	}
	srv.mu.Lock()
	accept := srv.accept
	srv.mu.Unlock()
	if len(accept) != 1 || accept[0] != "application/json" {
		t.Errorf("got Accept headers %q; want [application/json]", accept)
	}
}

func TestUnknownIssuerNoNetwork(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)
	before := srv.hits.Load()
	for _, iss := range []string{"https://evil.test", "", testIssuer + "/", strings.ToUpper(testIssuer)} {
		if _, err := c.Key(context.Background(), iss, "A"); !errors.Is(err, ErrUnknownIssuer) {
			t.Errorf("Key(%q) error = %v; want ErrUnknownIssuer", iss, err)
		}
		if err := c.Refresh(context.Background(), iss); !errors.Is(err, ErrUnknownIssuer) {
			t.Errorf("Refresh(%q) error = %v; want ErrUnknownIssuer", iss, err)
		}
	}
	if got := srv.hits.Load(); got != before {
		t.Errorf("unknown issuers caused %d fetches", got-before)
	}
	ev.none(t)
}

// TestKeyHitNoAllocs proves the hot path does not allocate.
func TestKeyHitNoAllocs(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	c := mustNew(t, Config{Issuers: map[string]string{testIssuer: srv.URL}, FailFast: true})
	ctx := context.Background()
	var k *ecdsa.PublicKey
	allocs := testing.AllocsPerRun(1000, func() {
		k, _ = c.Key(ctx, testIssuer, "A")
	})
	if allocs != 0 {
		t.Errorf("Key hit allocates %v times per call; want 0", allocs)
	}
	if !sameKey(k, &a.PublicKey) {
		t.Error("wrong key")
	}
}

func BenchmarkKeyHit(b *testing.B) {
	a := genKey(b)
	srv := newJWKSServer(b, setJSON(b, ecJWK(b, "A", &a.PublicKey), ecJWK(b, "B", &genKey(b).PublicKey)))
	c := mustNew(b, Config{Issuers: map[string]string{testIssuer: srv.URL}, FailFast: true})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Key(ctx, testIssuer, "A"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyHitParallel(b *testing.B) {
	a := genKey(b)
	srv := newJWKSServer(b, setJSON(b, ecJWK(b, "A", &a.PublicKey)))
	c := mustNew(b, Config{Issuers: map[string]string{testIssuer: srv.URL}, FailFast: true})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Key(ctx, testIssuer, "A"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// storm runs n concurrent Key calls for kid and returns their results.
func storm(c *Cache, n int, kid string) ([]*ecdsa.PublicKey, []error) {
	keys := make([]*ecdsa.PublicKey, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			keys[i], errs[i] = c.Key(context.Background(), testIssuer, kid)
		}()
	}
	close(start)
	wg.Wait()
	return keys, errs
}

func TestStorm(t *testing.T) {
	const n = 1000
	a, b := genKey(t), genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("got %d startup fetches; want 1", got)
	}

	// Key B is published; the startup fetch is older than the window.
	srv.set(http.StatusOK, setJSON(t, ecJWK(t, "A", &a.PublicKey), ecJWK(t, "B", &b.PublicKey)))
	clk.Advance(DefaultUnknownKIDInterval + time.Second)
	keys, errs := storm(c, n, "B")
	for i := range n {
		if errs[i] != nil || !sameKey(keys[i], &b.PublicKey) {
			t.Fatalf("call %d: Key(B) = %v, %v; want key B", i, keys[i], errs[i])
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("storm for new kid B caused %d fetches; want exactly 1", got-1)
	}
	if e := ev.next(t); e.Reason != ReasonUnknownKID || e.Keys != 2 || e.Err != nil {
		t.Errorf("unexpected event %+v", e)
	}

	// A kid that does not exist: the window is closed, so no fetch.
	_, errs = storm(c, n, "nope")
	for i, err := range errs {
		if !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("call %d: Key(nope) error = %v; want ErrKeyNotFound", i, err)
		}
	}
	if got := srv.hits.Load(); got > 3 {
		t.Fatalf("storm for a missing kid caused %d fetches; want at most 1", got-2)
	}
	ev.none(t)

	// Past the window, exactly one more fetch.
	clk.Advance(DefaultUnknownKIDInterval)
	before := srv.hits.Load()
	_, errs = storm(c, n, "nope")
	for i, err := range errs {
		if !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("call %d: Key(nope) error = %v; want ErrKeyNotFound", i, err)
		}
	}
	if got := srv.hits.Load() - before; got != 1 {
		t.Fatalf("storm past the window caused %d fetches; want 1", got)
	}
	if e := ev.next(t); e.Reason != ReasonUnknownKID {
		t.Errorf("unexpected event %+v", e)
	}
	// Known keys still served.
	if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Errorf("Key(A) = %v, %v", k, err)
	}
	// An empty kid never triggers a fetch.
	clk.Advance(time.Hour / 2)
	if _, err := c.Key(context.Background(), testIssuer, ""); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Key(\"\") error = %v; want ErrKeyNotFound", err)
	}
	ev.none(t)
}

// TestUnknownKIDJoinsInFlight checks that callers arriving while a fetch is
// running join it, and that the join honours the caller's context.
func TestUnknownKIDJoinsInFlight(t *testing.T) {
	a, b := genKey(t), genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)

	srv.mu.Lock()
	srv.body = setJSON(t, ecJWK(t, "A", &a.PublicKey), ecJWK(t, "B", &b.PublicKey))
	srv.block = make(chan struct{})
	srv.started = make(chan struct{}, 10)
	srv.mu.Unlock()
	clk.Advance(time.Minute)

	first := make(chan error, 1)
	go func() {
		_, err := c.Key(context.Background(), testIssuer, "B")
		first <- err
	}()
	<-srv.started // the fetch is in flight

	// A caller whose context ends stops waiting, without cancelling the fetch.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Key(ctx, testIssuer, "B"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Key with cancelled ctx error = %v; want ErrUnavailable and context.Canceled", err)
	}
	// Hits for a known kid do not wait.
	if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Errorf("Key(A) during fetch = %v, %v", k, err)
	}
	joined := make(chan *ecdsa.PublicKey, 1)
	go func() {
		k, _ := c.Key(context.Background(), testIssuer, "B")
		joined <- k
	}()

	srv.mu.Lock()
	close(srv.block)
	srv.block = nil
	srv.mu.Unlock()
	if err := <-first; err != nil {
		t.Fatalf("first Key(B): %v", err)
	}
	if k := <-joined; !sameKey(k, &b.PublicKey) {
		t.Fatal("joined Key(B) did not get key B")
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("got %d fetches; want 2", got)
	}
}

func TestFailedRefreshKeepsKeysThenMaxStale(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	cfg.MaxStale = 3 * time.Hour
	c := mustNew(t, cfg)
	ev.next(t)
	ctx := context.Background()

	failures := []struct {
		name   string
		status int
		body   string
	}{
		{"500", http.StatusInternalServerError, "oops"},
		{"200 garbage", http.StatusOK, "<html>maintenance</html>"},
		{"200 no usable keys", http.StatusOK, `{"keys":[]}`},
	}
	for _, f := range failures {
		srv.set(f.status, []byte(f.body))
		if err := c.Refresh(ctx, testIssuer); err == nil {
			t.Fatalf("%s: Refresh succeeded", f.name)
		}
		if e := ev.next(t); e.Err == nil || e.Reason != ReasonManual {
			t.Errorf("%s: unexpected event %+v", f.name, e)
		}
		if k, err := c.Key(ctx, testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
			t.Fatalf("%s: Key(A) after failed refresh = %v, %v; want last good key", f.name, k, err)
		}
	}

	// Past the refresh time: Key serves A and kicks a background refresh,
	// which fails.
	clk.Advance(50 * time.Minute)
	if k, err := c.Key(ctx, testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Fatalf("Key(A) past refresh time = %v, %v", k, err)
	}
	if e := ev.next(t); e.Reason != ReasonTTL || e.Err == nil {
		t.Errorf("unexpected event %+v", e)
	}
	// An unknown kid while the last fetch failed is "unavailable", not "not found".
	if _, err := c.Key(ctx, testIssuer, "B"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Key(B) after failed fetch error = %v; want ErrUnavailable", err)
	}

	// Past MaxStale: fail closed. The retry (allowed: the window has
	// passed) fails too.
	clk.Advance(3 * time.Hour)
	_, err := c.Key(ctx, testIssuer, "A")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Key(A) past MaxStale error = %v; want ErrUnavailable", err)
	}
	var fe *FetchError
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusOK {
		t.Errorf("error %v does not carry the fetch error", err)
	}
	ev.next(t)
	// Within the window: no fetch, still unavailable.
	before := srv.hits.Load()
	if _, err := c.Key(ctx, testIssuer, "A"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Key(A) error = %v; want ErrUnavailable", err)
	}
	if srv.hits.Load() != before {
		t.Error("fetch within the window")
	}
	// The endpoint recovers; after the window Key fetches and succeeds.
	srv.set(http.StatusOK, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk.Advance(DefaultUnknownKIDInterval)
	if k, err := c.Key(ctx, testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Fatalf("Key(A) after recovery = %v, %v", k, err)
	}
	if e := ev.next(t); e.Err != nil || e.Reason != ReasonTTL {
		t.Errorf("unexpected event %+v", e)
	}
}

func TestNon200KeepsKeys(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)

	const html = "<html><body>403 Forbidden: secret-detail</body></html>"
	srv.setHeader("Content-Type", "text/html")
	for _, status := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusBadGateway, http.StatusNoContent, http.StatusMovedPermanently} {
		srv.set(status, []byte(html))
		err := c.Refresh(context.Background(), testIssuer)
		var fe *FetchError
		if !errors.As(err, &fe) || fe.StatusCode != status || fe.Issuer != testIssuer || fe.URL != srv.URL {
			t.Fatalf("status %d: Refresh error = %#v; want a *FetchError with the status", status, err)
		}
		if strings.Contains(err.Error(), "secret-detail") || !strings.Contains(err.Error(), http.StatusText(status)) {
			t.Errorf("status %d: error %q must name the status and not include the body", status, err)
		}
		if e := ev.next(t); !errors.Is(e.Err, err) && e.Err.Error() != err.Error() {
			t.Errorf("event error %v; want %v", e.Err, err)
		}
		if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
			t.Fatalf("status %d: Key(A) = %v, %v; want the old key", status, k, err)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	a := genKey(t)
	body := setJSON(t, ecJWK(t, "A", &a.PublicKey))
	for _, chunked := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if chunked {
				w.Write(body[:10])
				w.(http.Flusher).Flush() // no Content-Length
				w.Write(body[10:])
				return
			}
			w.Write(body)
		}))
		clk, ev := newFakeClock(), newEvents()
		cfg := Config{
			Issuers:      map[string]string{testIssuer: srv.URL},
			Clock:        clk.Now,
			OnRefresh:    ev.hook,
			FailFast:     true,
			MaxBodyBytes: int64(len(body) - 1),
			noLoop:       true,
		}
		_, err := New(context.Background(), cfg)
		if !errors.Is(err, ErrBodyTooLarge) {
			t.Errorf("chunked=%v: New error = %v; want ErrBodyTooLarge", chunked, err)
		}
		// Exactly at the limit is fine.
		cfg.MaxBodyBytes = int64(len(body))
		c, err := New(context.Background(), cfg)
		if err != nil {
			t.Errorf("chunked=%v: body at the limit: %v", chunked, err)
		} else {
			c.Close()
		}
		srv.Close()
	}
}

func TestFailFast(t *testing.T) {
	a := genKey(t)
	good := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	bad := newJWKSServer(t, []byte("nope"))
	bad.set(http.StatusServiceUnavailable, nil)
	ev := newEvents()
	_, err := New(context.Background(), Config{
		Issuers:   map[string]string{testIssuer: good.URL, "https://other.test": bad.URL},
		FailFast:  true,
		OnRefresh: ev.hook,
	})
	var fe *FetchError
	if err == nil || !errors.As(err, &fe) || fe.Issuer != "https://other.test" || fe.StatusCode != 503 {
		t.Fatalf("New error = %v; want a FetchError for the failing issuer", err)
	}
	if !strings.HasPrefix(err.Error(), "jwks: ") {
		t.Errorf("error %q lacks the prefix", err)
	}
	ev.next(t)
	ev.next(t)
	if good.hits.Load() != 1 || bad.hits.Load() != 1 {
		t.Errorf("got %d and %d fetches; want 1 each", good.hits.Load(), bad.hits.Load())
	}

	// FailFast with every issuer up: keys ready when New returns.
	c := mustNew(t, Config{Issuers: map[string]string{testIssuer: good.URL}, FailFast: true})
	if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Errorf("Key = %v, %v", k, err)
	}

	// Unreachable endpoint.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	if _, err := New(context.Background(), Config{Issuers: map[string]string{testIssuer: deadURL}, FailFast: true}); err == nil || !errors.As(err, &fe) || fe.StatusCode != 0 {
		t.Errorf("New against a closed port error = %v; want a FetchError without status", err)
	}
}

func TestTolerantStart(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	srv.mu.Lock()
	srv.block = make(chan struct{})
	srv.started = make(chan struct{}, 10)
	srv.mu.Unlock()
	srv.set(http.StatusServiceUnavailable, nil)
	clk, ev := newFakeClock(), newEvents()
	c := mustNew(t, testConfig(srv, clk, ev)) // returns while the fetch is blocked
	<-srv.started

	// Key waits on the in-flight startup fetch, which fails.
	res := make(chan error, 1)
	go func() {
		_, err := c.Key(context.Background(), testIssuer, "A")
		res <- err
	}()
	srv.mu.Lock()
	close(srv.block)
	srv.block = nil
	srv.mu.Unlock()
	if err := <-res; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Key during failing startup error = %v; want ErrUnavailable", err)
	}
	if e := ev.next(t); e.Reason != ReasonStartup || e.Err == nil {
		t.Errorf("unexpected event %+v", e)
	}
	// Within the window: no new fetch.
	if _, err := c.Key(context.Background(), testIssuer, "A"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Key error = %v; want ErrUnavailable", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("got %d fetches; want 1", got)
	}
	ev.none(t)

	// After the window Key retries once, now successfully.
	srv.set(http.StatusOK, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk.Advance(DefaultUnknownKIDInterval)
	if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Fatalf("Key after recovery = %v, %v", k, err)
	}
	if e := ev.next(t); e.Reason != ReasonStartup || e.Err != nil {
		t.Errorf("unexpected event %+v", e)
	}
}

func TestTolerantStartWaitsForFirstFetch(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	srv.mu.Lock()
	srv.block = make(chan struct{})
	srv.started = make(chan struct{}, 10)
	srv.mu.Unlock()
	c := mustNew(t, Config{Issuers: map[string]string{testIssuer: srv.URL}})
	<-srv.started
	res := make(chan *ecdsa.PublicKey, 1)
	go func() {
		k, _ := c.Key(context.Background(), testIssuer, "A")
		res <- k
	}()
	srv.mu.Lock()
	close(srv.block)
	srv.block = nil
	srv.mu.Unlock()
	if k := <-res; !sameKey(k, &a.PublicKey) {
		t.Fatal("Key did not wait for the startup fetch")
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("got %d fetches; want 1", got)
	}
}

func TestKeyWaitBoundedByFetchTimeout(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	srv.mu.Lock()
	srv.block = make(chan struct{}) // never released: the fetch times out
	srv.mu.Unlock()
	t.Cleanup(func() {
		srv.mu.Lock()
		close(srv.block)
		srv.block = nil
		srv.mu.Unlock()
	})
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FetchTimeout = 50 * time.Millisecond
	c := mustNew(t, cfg)
	if _, err := c.Key(context.Background(), testIssuer, "A"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Key error = %v; want ErrUnavailable", err)
	}
	if e := ev.next(t); !errors.Is(e.Err, context.DeadlineExceeded) {
		t.Errorf("event error = %v; want a deadline error", e.Err)
	}
}

func TestTTLRefreshDoesNotBlock(t *testing.T) {
	a, b := genKey(t), genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)

	// Before 80% of the TTL nothing happens.
	clk.Advance(47 * time.Minute)
	if _, err := c.Key(context.Background(), testIssuer, "A"); err != nil {
		t.Fatal(err)
	}
	ev.none(t)

	// Past it, Key answers from the current keys while the refresh is
	// blocked on the server.
	srv.mu.Lock()
	srv.body = setJSON(t, ecJWK(t, "A", &a.PublicKey), ecJWK(t, "B", &b.PublicKey))
	srv.block = make(chan struct{})
	srv.started = make(chan struct{}, 10)
	srv.mu.Unlock()
	clk.Advance(2 * time.Minute)
	for range 100 {
		if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
			t.Fatalf("Key(A) = %v, %v", k, err)
		}
	}
	<-srv.started
	srv.mu.Lock()
	close(srv.block)
	srv.block = nil
	srv.mu.Unlock()
	if e := ev.next(t); e.Reason != ReasonTTL || e.Err != nil || e.Keys != 2 {
		t.Errorf("unexpected event %+v", e)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("got %d fetches; want 2", got)
	}
	if k, err := c.Key(context.Background(), testIssuer, "B"); err != nil || !sameKey(k, &b.PublicKey) {
		t.Errorf("Key(B) after refresh = %v, %v", k, err)
	}
}

func TestCacheControlTTL(t *testing.T) {
	c := &Cache{s: &settings{ttl: time.Hour, minTTL: time.Minute, maxTTL: 24 * time.Hour}}
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, time.Hour},
		{"max-age", map[string]string{"Cache-Control": "public, max-age=600"}, 10 * time.Minute},
		{"max-age upper case, quoted", map[string]string{"Cache-Control": `MAX-AGE="900"`}, 15 * time.Minute},
		{"below MinTTL", map[string]string{"Cache-Control": "max-age=5"}, time.Minute},
		{"zero", map[string]string{"Cache-Control": "max-age=0"}, time.Minute},
		{"above MaxTTL", map[string]string{"Cache-Control": "max-age=31536000"}, 24 * time.Hour},
		{"overflow", map[string]string{"Cache-Control": "max-age=99999999999999999999999"}, 24 * time.Hour},
		{"no-store", map[string]string{"Cache-Control": "no-store"}, time.Minute},
		{"no-cache with max-age", map[string]string{"Cache-Control": "max-age=3600, no-cache"}, time.Minute},
		{"invalid max-age", map[string]string{"Cache-Control": "max-age=soon"}, time.Hour},
		{"negative max-age", map[string]string{"Cache-Control": "max-age=-5"}, time.Hour},
		{"max-age without value", map[string]string{"Cache-Control": "max-age"}, time.Hour},
		{"Age subtracted", map[string]string{"Cache-Control": "max-age=3600", "Age": "600"}, 50 * time.Minute},
		{"Age exceeds max-age", map[string]string{"Cache-Control": "max-age=3600", "Age": "7200"}, time.Minute},
		{"s-maxage ignored", map[string]string{"Cache-Control": "s-maxage=60"}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := c.effectiveTTL(h); got != tt.want {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

// TestCacheControlDrivesRefresh checks end to end that a clamped max-age
// sets the refresh time.
func TestCacheControlDrivesRefresh(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	srv.setHeader("Cache-Control", "public, max-age=10") // clamped to MinTTL = 5 min
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	cfg.MinTTL = 5 * time.Minute
	c := mustNew(t, cfg)
	if e := ev.next(t); e.TTL != 5*time.Minute {
		t.Fatalf("got TTL %v; want 5m", e.TTL)
	}
	clk.Advance(3*time.Minute + 59*time.Second) // before 80% of 5 min
	c.Key(context.Background(), testIssuer, "A")
	ev.none(t)
	clk.Advance(time.Second)
	c.Key(context.Background(), testIssuer, "A")
	if e := ev.next(t); e.Reason != ReasonTTL || e.Err != nil {
		t.Errorf("unexpected event %+v", e)
	}
}

// TestBackgroundLoopRefreshesIdleIssuer drives the loop's decision function
// with the fake clock.
func TestBackgroundLoopRefreshesIdleIssuer(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	c := mustNew(t, cfg)
	ev.next(t)

	d, ok := c.startDue()
	if !ok || d != 48*time.Minute {
		t.Errorf("startDue = %v, %v; want 48m (80%% of the 60 min TTL)", d, ok)
	}
	clk.Advance(40 * time.Minute)
	if d, _ := c.startDue(); d != 8*time.Minute {
		t.Errorf("startDue = %v; want 8m", d)
	}
	ev.none(t)
	clk.Advance(8 * time.Minute)
	c.startDue()
	if e := ev.next(t); e.Reason != ReasonTTL || e.Err != nil {
		t.Errorf("unexpected event %+v", e)
	}
	// A failed refresh is retried after UnknownKIDInterval.
	srv.set(http.StatusInternalServerError, nil)
	clk.Advance(48 * time.Minute)
	c.startDue()
	if e := ev.next(t); e.Err == nil {
		t.Errorf("unexpected event %+v", e)
	}
	if d, _ := c.startDue(); d != DefaultUnknownKIDInterval {
		t.Errorf("startDue after failure = %v; want %v", d, DefaultUnknownKIDInterval)
	}
}

// TestBackgroundLoopRuns checks the real loop goroutine picks up due work
// when woken: a failed tolerant start is retried by the loop itself.
func TestBackgroundLoopRuns(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusInternalServerError, nil)
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.noLoop = false
	c := mustNew(t, cfg)
	if e := ev.next(t); e.Err == nil {
		t.Fatalf("unexpected event %+v", e)
	}
	srv.set(http.StatusOK, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	clk.Advance(DefaultUnknownKIDInterval)
	c.wake <- struct{}{} // as a finished fetch would
	if e := ev.next(t); e.Err != nil || e.Reason != ReasonStartup {
		t.Fatalf("unexpected event %+v", e)
	}
	if k, err := c.Key(context.Background(), testIssuer, "A"); err != nil || !sameKey(k, &a.PublicKey) {
		t.Errorf("Key = %v, %v", k, err)
	}
}

func TestOnRefreshEventsAndLogger(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey), map[string]any{"kty": "RSA", "kid": "r"}))
	clk, ev := newFakeClock(), newEvents()
	cfg := testConfig(srv, clk, ev)
	cfg.FailFast = true
	var logBuf syncBuffer
	cfg.Logger = newTestLogger(&logBuf)
	c := mustNew(t, cfg)
	e := ev.next(t)
	if e.Reason != ReasonStartup || e.Keys != 1 || e.Skipped != 1 || e.Err != nil || e.Duration <= 0 {
		t.Errorf("unexpected startup event %+v", e)
	}
	clk.Advance(time.Minute)
	if err := c.Refresh(context.Background(), testIssuer); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t); e.Reason != ReasonManual || !e.At.Equal(clk.Now()) {
		t.Errorf("unexpected manual event %+v", e)
	}
	srv.set(http.StatusTeapot, nil)
	if err := c.Refresh(context.Background(), testIssuer); err == nil {
		t.Fatal("Refresh succeeded")
	}
	if e := ev.next(t); e.Err == nil || e.Keys != 0 || e.TTL != 0 {
		t.Errorf("unexpected failure event %+v", e)
	}
	logs := logBuf.String()
	if !strings.Contains(logs, "level=DEBUG msg=\"jwks: refreshed\"") || !strings.Contains(logs, "level=WARN msg=\"jwks: refresh failed") || !strings.Contains(logs, "418") {
		t.Errorf("unexpected logs:\n%s", logs)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	a := genKey(t)
	body := setJSON(t, ecJWK(t, "A", &a.PublicKey))
	// An in-memory transport, so no connection goroutines are involved.
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		rec.Write(body)
		return rec.Result(), nil
	})}
	waitCacheGoroutines(t, 0) // other tests' caches are closed
	c, err := New(context.Background(), Config{
		Issuers:    map[string]string{testIssuer: "https://a.test/jwks", "https://b.test": "https://b.test/jwks"},
		HTTPClient: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Key(context.Background(), testIssuer, "A"); err != nil {
		t.Fatal(err)
	}
	// The refresh loop is started by New but may not have been scheduled
	// yet on a busy machine; wait for it rather than assume it.
	deadline := time.Now().Add(10 * time.Second)
	for cacheGoroutines() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the refresh loop never started")
		}
		runtime.Gosched()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	default:
		t.Fatal("Close returned before its goroutines stopped")
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	waitCacheGoroutines(t, 0)
	if _, err := c.Key(context.Background(), testIssuer, "A"); !errors.Is(err, ErrClosed) {
		t.Errorf("Key after Close error = %v; want ErrClosed", err)
	}
	if err := c.Refresh(context.Background(), testIssuer); !errors.Is(err, ErrClosed) {
		t.Errorf("Refresh after Close error = %v; want ErrClosed", err)
	}
}

func TestContextCancelStops(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, Config{Issuers: map[string]string{testIssuer: srv.URL}, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("cache did not stop after its context was cancelled")
	}
	waitCacheGoroutines(t, 0)
	if _, err := c.Key(context.Background(), testIssuer, "A"); !errors.Is(err, ErrClosed) {
		t.Errorf("Key after cancel error = %v; want ErrClosed", err)
	}
	c.Close()
}

func TestCloseDuringFetch(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	srv.mu.Lock()
	srv.block = make(chan struct{})
	srv.started = make(chan struct{}, 10)
	srv.mu.Unlock()
	t.Cleanup(func() {
		srv.mu.Lock()
		close(srv.block)
		srv.block = nil
		srv.mu.Unlock()
	})
	c, err := New(context.Background(), Config{Issuers: map[string]string{testIssuer: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	<-srv.started
	res := make(chan error, 1)
	go func() {
		_, err := c.Key(context.Background(), testIssuer, "A")
		res <- err
	}()
	c.Close() // cancels the blocked fetch and waits for it
	if err := <-res; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrUnavailable) {
		t.Errorf("Key during Close error = %v; want ErrClosed or ErrUnavailable", err)
	}
}

func TestFetchErrorMessages(t *testing.T) {
	for _, tt := range []struct {
		err  *FetchError
		want string
	}{
		{&FetchError{URL: "https://x/j", StatusCode: 403}, "jwks: fetching https://x/j: unexpected status 403 Forbidden"},
		{&FetchError{URL: "https://x/j", StatusCode: 200, Err: ErrBodyTooLarge}, "jwks: fetching https://x/j (status 200): jwks: response body too large"},
		{&FetchError{URL: "https://x/j", Err: io.EOF}, "jwks: fetching https://x/j: EOF"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q; want %q", got, tt.want)
		}
	}
	if !errors.Is(&FetchError{Err: ErrBodyTooLarge}, ErrBodyTooLarge) {
		t.Error("FetchError does not unwrap")
	}
}

func TestDefaultClientRefusesDowngrade(t *testing.T) {
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL, http.StatusFound)
	}))
	defer tls.Close()
	client := defaultClient(time.Second)
	client.Transport = tls.Client().Transport
	resp, err := client.Get(tls.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("redirect from https to http was followed")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cacheGoroutines counts goroutines running this package's code or a
// singleflight call (the fetch goroutines).
func cacheGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "kyapay-go/jwks.(*Cache)") || strings.Contains(g, "singleflight.(*Group).doCall") {
			n++
		}
	}
	return n
}

// waitCacheGoroutines waits until at most want such goroutines run. A
// goroutine that has finished its work may take a few scheduler turns to
// exit; the deadline only guards against a hang.
func waitCacheGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for cacheGoroutines() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d cache goroutines left, want %d:\n%s", cacheGoroutines(), want, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

func TestAddRefreshListener(t *testing.T) {
	a := genKey(t)
	srv := newJWKSServer(t, setJSON(t, ecJWK(t, "A", &a.PublicKey)))
	var config, first, second atomic.Int32
	c, err := New(context.Background(), Config{
		Issuers:   map[string]string{testIssuer: srv.URL},
		OnRefresh: func(RefreshEvent) { config.Add(1) },
		noLoop:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	remove1 := c.AddRefreshListener(func(ev RefreshEvent) {
		if ev.Issuer != testIssuer || ev.Keys != 1 || ev.Err != nil {
			t.Errorf("event %+v", ev)
		}
		first.Add(1)
	})
	c.AddRefreshListener(func(RefreshEvent) { second.Add(1) })
	if err := c.Refresh(context.Background(), testIssuer); err != nil {
		t.Fatal(err)
	}
	remove1()
	remove1() // idempotent
	if err := c.Refresh(context.Background(), testIssuer); err != nil {
		t.Fatal(err)
	}
	if config.Load() < 2 || first.Load() != 1 || second.Load() != 2 {
		t.Errorf("OnRefresh %d, first listener %d, second %d; want >=2, 1, 2", config.Load(), first.Load(), second.Load())
	}
}
