package jwks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testIssuer is the issuer name used by most tests.
const testIssuer = "https://issuer.test"

// fakeClock is a concurrency-safe manual clock.
type fakeClock struct {
	base time.Time
	off  atomic.Int64 // nanoseconds added to base
}

func newFakeClock() *fakeClock {
	return &fakeClock{base: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time          { return f.base.Add(time.Duration(f.off.Load())) }
func (f *fakeClock) Advance(d time.Duration) { f.off.Add(int64(d)) }

// genKey returns a fresh P-256 key.
func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// coords returns the base64url x and y of pub.
func coords(t testing.TB, pub *ecdsa.PublicKey) (x, y string) {
	t.Helper()
	b, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	n := (len(b) - 1) / 2
	return base64.RawURLEncoding.EncodeToString(b[1 : 1+n]), base64.RawURLEncoding.EncodeToString(b[1+n:])
}

// ecJWK returns the JWK members of pub with the given kid, alg ES256 and
// use sig.
func ecJWK(t testing.TB, kid string, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	x, y := coords(t, pub)
	crv := map[int]string{256: "P-256", 384: "P-384", 521: "P-521"}[pub.Curve.Params().BitSize]
	m := map[string]any{"kty": "EC", "crv": crv, "x": x, "y": y, "alg": "ES256", "use": "sig"}
	if kid != "" {
		m["kid"] = kid
	}
	return m
}

// setJSON marshals a JWK Set with the given elements.
func setJSON(t testing.TB, elems ...any) []byte {
	t.Helper()
	if elems == nil {
		elems = []any{}
	}
	b, err := json.Marshal(map[string]any{"keys": elems})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer is a loopback JWKS endpoint whose response tests can change.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu      sync.Mutex // guards the fields below
	status  int
	body    []byte
	header  http.Header
	block   chan struct{} // if non-nil, requests wait until it is closed
	started chan struct{} // if non-nil, receives once per request before blocking
	accept  []string      // Accept header of every request
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, body: body, header: http.Header{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body, block, started := s.status, s.body, s.block, s.started
		s.accept = append(s.accept, r.Header.Get("Accept"))
		for k, v := range s.header {
			w.Header()[k] = v
		}
		s.mu.Unlock()
		if started != nil {
			started <- struct{}{}
		}
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *jwksServer) setHeader(k, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header.Set(k, v)
}

// events collects OnRefresh events.
type events chan RefreshEvent

func newEvents() events { return make(events, 4096) }

func (e events) hook(ev RefreshEvent) { e <- ev }

// next returns the next event. The timeout is only a guard against a hung
// test; nothing waits for time to pass.
func (e events) next(t testing.TB) RefreshEvent {
	t.Helper()
	select {
	case ev := <-e:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh event")
		return RefreshEvent{}
	}
}

// none asserts that no event is pending.
func (e events) none(t testing.TB) {
	t.Helper()
	select {
	case ev := <-e:
		t.Fatalf("unexpected refresh event %+v", ev)
	default:
	}
}

// testConfig returns a Config for one issuer served by srv, with a fake
// clock, an event hook and no background loop.
func testConfig(srv *jwksServer, clk *fakeClock, ev events) Config {
	return Config{
		Issuers:   map[string]string{testIssuer: srv.URL},
		Clock:     clk.Now,
		OnRefresh: ev.hook,
		noLoop:    true,
	}
}

// mustNew creates a cache and closes it at the end of the test.
func mustNew(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sameKey(a, b *ecdsa.PublicKey) bool {
	return a != nil && b != nil && a.Equal(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
