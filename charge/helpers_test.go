package charge

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testKey   = "sk_test_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	testToken = "eyJhbGciOiJFUzI1NiIsInR5cCI6Imt5YS1wYXkrand0In0.eyJqdGkiOiIxMjM0NTY3OC0xMjM0LTEyMzQtMTIzNC0xMjM0NTY3ODkwMTIiLCJ2YWwiOjEwMDAwfQ.c2lnbmF0dXJlLWJ5dGVzLWZvci10ZXN0cy1vbmx5LW5vdC1yZWFsLXNpZ25hdHVyZQ"
)

// noBackoff makes retries immediate.
func noBackoff(int) time.Duration { return 0 }

// recorded is what the fake API saw of one request.
type recorded struct {
	Method, Path, RawPath, RequestURI string
	Query                             map[string][]string
	Header                            http.Header
	Body                              []byte
}

// fakeAPI is an httptest server standing in for Skyfire. It records every
// request and answers with handler.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded // guarded by mu
	hits atomic.Int32
}

func newFakeAPI(t testing.TB, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.hits.Add(1)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RequestURI: r.RequestURI,
			Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
		})
		f.mu.Unlock()
		handler(w, r, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) last(t testing.TB) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("server received no request")
	}
	return f.reqs[len(f.reqs)-1]
}

// reply returns a handler that answers status and body as JSON.
func reply(status int, body string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// newTestClient returns a Client for base with test defaults and its own
// transport (closed at cleanup). mod may adjust the config.
func newTestClient(t testing.TB, base string, mod func(*Config)) *Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{
		BaseURL:      base,
		APIKey:       testKey,
		HTTPClient:   &http.Client{Transport: tr},
		Timeout:      5 * time.Second,
		RetryBackoff: noBackoff,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// countingTransport counts dials; fail, if set, makes dial number n
// (1-based) fail without touching the network.
func countingTransport(t testing.TB, dials *atomic.Int32, fail func(n int32) bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		n := dials.Add(1)
		if fail != nil && fail(n) {
			return nil, errors.New("injected dial failure")
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// asError fails the test unless err is a *Error.
func asError(t testing.TB, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error; want *Error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v; want *Error", err, err)
	}
	return e
}

// wantOutcome checks the outcome and that exactly the matching sentinel
// matches.
func wantOutcome(t testing.TB, err error, want Outcome) {
	t.Helper()
	if got := OutcomeOf(err); got != want {
		t.Fatalf("OutcomeOf(%v) = %v; want %v", err, got, want)
	}
	for s, o := range map[error]Outcome{ErrDeclined: OutcomeDeclined, ErrUnknownOutcome: OutcomeUnknown, ErrNotSent: OutcomeNotSent} {
		if got := errors.Is(err, s); got != (o == want) {
			t.Errorf("errors.Is(err, %v) = %v; want %v", s, got, o == want)
		}
	}
}
