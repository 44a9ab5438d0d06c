package charge

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// hangingAPI answers GET (charges) at once; for POSTs it reads the request
// and then blocks until the client goes away (or the test ends), after
// writing the headers and half a body if writeHeader. It never sleeps.
func hangingAPI(t *testing.T, writeHeader bool) *fakeAPI {
	release := make(chan struct{})
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `{"data":[]}`)
			return
		}
		if writeHeader {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, `{"amountCharged":`)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before api.Close
	return api
}

func TestTimeoutAfterSendIsUnknown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		writeHeader bool
	}{
		{"no response at all", false},
		{"headers then a stalled body", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := hangingAPI(t, tt.writeHeader)
			var dials atomic.Int32
			hc := &http.Client{Transport: countingTransport(t, &dials, nil)}
			// Warm the keep-alive connection with a generous timeout, so the
			// 50ms below is spent waiting for the answer, not dialling on a
			// loaded test machine.
			warm := newTestClient(t, api.URL, func(cfg *Config) { cfg.HTTPClient = hc })
			if _, err := warm.TokenCharges(context.Background(), "jti", "", 0); err != nil {
				t.Fatal(err)
			}
			c := newTestClient(t, api.URL, func(cfg *Config) {
				cfg.HTTPClient = hc
				cfg.Timeout = 50 * time.Millisecond
				cfg.MaxRetries = 5
			})
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			e := asError(t, err)
			wantOutcome(t, err, OutcomeUnknown)
			if e.Reason != ReasonTransport {
				t.Errorf("got reason %v; want transport", e.Reason)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false; want true", err)
			}
			if d := dials.Load(); d != 1 {
				t.Errorf("got %d dials; want 1 (no retry)", d)
			}
			if n := api.hits.Load(); n > 2 {
				t.Errorf("server got %d requests; want at most 1 charge (no retry)", n-1)
			}
		})
	}
}

func TestCallerCancelAfterSendIsUnknown(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		close(started)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	c := newTestClient(t, api.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := c.Charge(ctx, testToken, kyapay.MustParseAmount("0.01"))
	wantOutcome(t, err, OutcomeUnknown)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false; want true", err)
	}
}

func TestContextDoneBeforeSendIsNotSent(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.01"}`))
	c := newTestClient(t, api.URL, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, nil)}
	})
	for _, tt := range []struct {
		name string
		ctx  func() context.Context
		want error
	}{
		{"canceled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"deadline passed", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Charge(tt.ctx(), testToken, kyapay.MustParseAmount("0.01"))
			wantOutcome(t, err, OutcomeNotSent)
			if !errors.Is(err, tt.want) {
				t.Errorf("errors.Is(%v, %v) = false; want true", err, tt.want)
			}
		})
	}
	if n, d := api.hits.Load(), dials.Load(); n != 0 || d != 0 {
		t.Errorf("server got %d requests, %d dials; want 0 and 0", n, d)
	}
}

// closedAddr returns the address of a listener that has been closed, so a
// dial to it is refused.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestConnectionRefusedIsNotSentAndRetried(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		maxRetries int
		wantDials  int32
	}{
		{"default retries", 0, DefaultMaxRetries + 1},
		{"no retries", -1, 1},
		{"one retry", 1, 2},
		{"five retries", 5, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var dials atomic.Int32
			var backoffs []int
			c := newTestClient(t, "http://"+closedAddr(t), func(cfg *Config) {
				cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, nil)}
				cfg.MaxRetries = tt.maxRetries
				cfg.RetryBackoff = func(attempt int) time.Duration { backoffs = append(backoffs, attempt); return 0 }
			})
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			e := asError(t, err)
			wantOutcome(t, err, OutcomeNotSent)
			if e.Reason != ReasonTransport || e.Status != 0 {
				t.Errorf("got reason %v status %d; want transport 0", e.Reason, e.Status)
			}
			if d := dials.Load(); d != tt.wantDials {
				t.Errorf("got %d dials; want %d (1 + MaxRetries)", d, tt.wantDials)
			}
			if len(backoffs) != int(tt.wantDials)-1 {
				t.Errorf("got backoff calls %v; want %d", backoffs, tt.wantDials-1)
			}
			for i, a := range backoffs {
				if a != i+1 {
					t.Errorf("backoff call %d got attempt %d; want %d", i, a, i+1)
				}
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) {
				t.Errorf("want the dial error in the chain; got %v", err)
			}
		})
	}
}

func TestDialFailureThenSuccess(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.01"}`))
	c := newTestClient(t, api.URL, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, func(n int32) bool { return n <= 2 })}
		cfg.MaxRetries = 2
	})
	r, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if r.AmountCharged.String() != "0.01" {
		t.Errorf("got %s; want 0.01", r.AmountCharged)
	}
	if d, n := dials.Load(), api.hits.Load(); d != 3 || n != 1 {
		t.Errorf("got %d dials, %d requests; want 3 and 1", d, n)
	}
}

func TestBackoffHonoursContext(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newTestClient(t, "http://"+closedAddr(t), func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, nil)}
		cfg.MaxRetries = 5
		cfg.RetryBackoff = func(int) time.Duration { cancel(); return time.Hour }
	})
	_, err := c.Charge(ctx, testToken, kyapay.MustParseAmount("0.01"))
	wantOutcome(t, err, OutcomeNotSent)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false; want true", err)
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("got %d dials; want 1", d)
	}
}

func TestConnectionClosedAfterRequestIsUnknownAndNotRetried(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		hits.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	for _, op := range []string{"charge", "service price", "introspect"} {
		hits.Store(0)
		var dials atomic.Int32
		c := newTestClient(t, srv.URL, func(cfg *Config) {
			cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, nil)}
			cfg.MaxRetries = 5
		})
		var err error
		switch op {
		case "charge":
			_, err = c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
		case "service price":
			_, err = c.ChargeServicePrice(context.Background(), testToken)
		case "introspect":
			_, err = c.Introspect(context.Background(), testToken)
		}
		e := asError(t, err)
		wantOutcome(t, err, OutcomeUnknown)
		if e.Reason != ReasonTransport {
			t.Errorf("%s: got reason %v; want transport", op, e.Reason)
		}
		if n, d := hits.Load(), dials.Load(); n != 1 || d != 1 {
			t.Errorf("%s: server got %d requests over %d dials; want exactly 1 and 1", op, n, d)
		}
	}
}

func TestKeepAliveReuse(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.01"}`))
	c := newTestClient(t, api.URL, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, nil)}
	})
	for i := 0; i < 10; i++ {
		if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
			t.Fatal(err)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("got %d dials for 10 sequential charges; want 1 (keep-alive)", d)
	}
	// Same through the default client.
	def, err := New(Config{BaseURL: api.URL, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatal(err)
	}
	def.hc.CloseIdleConnections()
}

// opaqueTransport fails without reporting any httptrace event, like a
// RoundTripper that does not use *http.Transport.
type opaqueTransport struct{ calls atomic.Int32 }

func (o *opaqueTransport) RoundTrip(*http.Request) (*http.Response, error) {
	o.calls.Add(1)
	return nil, errors.New("opaque failure")
}

func TestUntracedTransportFailureIsUnknown(t *testing.T) {
	t.Parallel()
	ot := &opaqueTransport{}
	c, err := New(Config{BaseURL: "https://api.example", APIKey: testKey, HTTPClient: &http.Client{Transport: ot}, MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	wantOutcome(t, err, OutcomeUnknown)
	if n := ot.calls.Load(); n != 1 {
		t.Errorf("got %d round trips; want 1 (no retry without proof of not-sent)", n)
	}
}

func TestUserClientRedirectPolicyNotMutated(t *testing.T) {
	t.Parallel()
	hc := &http.Client{}
	if _, err := New(Config{BaseURL: "https://api.example", APIKey: testKey, HTTPClient: hc}); err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("New modified the caller's http.Client")
	}
}

func TestTLSHandshakeFailureIsNotSent(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	srv.Config.ErrorLog = discardLogger()
	t.Cleanup(srv.Close)
	var dials atomic.Int32
	c := newTestClient(t, srv.URL, func(cfg *Config) {
		// A transport that does not trust the test certificate.
		cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, nil)}
		cfg.MaxRetries = 1
	})
	_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	wantOutcome(t, err, OutcomeNotSent)
	if d, n := dials.Load(), hits.Load(); d != 2 || n != 0 {
		t.Errorf("got %d dials, %d requests; want 2 and 0", d, n)
	}
}

func TestHTTP2(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		_, _ = io.ReadAll(r.Body)
		if r.Header.Get("X-Test-Hang") == "" && r.URL.Path == "/api/v1/tokens/charge" {
			_, _ = io.WriteString(w, `{"amountCharged":"0.01"}`)
			return
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	hc := srv.Client()
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.HTTPClient = hc })
	if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatalf("Charge over HTTP/2: %v", err)
	}
	if p := proto.Load(); p != 2 {
		t.Fatalf("server saw HTTP/%d; want HTTP/2", p)
	}
	// A hang on the established HTTP/2 connection: unknown, not retried.
	c = newTestClient(t, srv.URL, func(cfg *Config) {
		cfg.HTTPClient = hc
		cfg.Timeout = 50 * time.Millisecond
	})
	_, err := c.Introspect(context.Background(), testToken)
	wantOutcome(t, err, OutcomeUnknown)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// TestRecycledAttemptStartsClean checks that the record of a finished
// attempt (which reached the server) does not leak into a later one: a
// dial failure after a successful charge must still be provably not sent,
// and retried.
func TestRecycledAttemptStartsClean(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.01"}`))
	tr := countingTransport(t, &dials, func(n int32) bool { return n%2 == 0 }) // every second dial fails
	tr.DisableKeepAlives = true                                                // one dial per request
	c := newTestClient(t, api.URL, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: tr}
		cfg.MaxRetries = 1
	})
	for i := range 20 {
		if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
			t.Fatalf("charge %d: %v (a dial failure must be retried)", i, err)
		}
	}
	if d, n := dials.Load(), api.hits.Load(); n != 20 || d != 39 {
		t.Errorf("got %d dials, %d requests; want 39 and 20", d, n)
	}
}

// TestCallerTraceStillCalled checks that a client trace already in the
// caller's context keeps receiving events, and that the not-sent proof
// still holds with it.
func TestCallerTraceStillCalled(t *testing.T) {
	t.Parallel()
	var dials, gets, gots atomic.Int32
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.01"}`))
	c := newTestClient(t, api.URL, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: countingTransport(t, &dials, func(n int32) bool { return n == 1 })}
		cfg.MaxRetries = 1
	})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GetConn: func(string) { gets.Add(1) },
		GotConn: func(httptrace.GotConnInfo) { gots.Add(1) },
	})
	for range 3 {
		if _, err := c.Charge(ctx, testToken, kyapay.MustParseAmount("0.01")); err != nil {
			t.Fatal(err)
		}
	}
	// The first charge dials twice (the first dial fails and is retried).
	if g, h := gets.Load(), gots.Load(); g != 4 || h != 3 {
		t.Errorf("caller's trace saw %d GetConn, %d GotConn; want 4 and 3", g, h)
	}
}

// keyStripper deletes the API key header from every request after sending
// it: a RoundTripper that breaks the rule not to modify requests.
type keyStripper struct{ next http.RoundTripper }

func (k keyStripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := k.next.RoundTrip(r)
	r.Header.Del("Skyfire-Api-Key")
	return resp, err
}

func TestForeignTransportGetsOwnHeaders(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Header.Get("skyfire-api-key") != testKey {
			w.WriteHeader(401)
			return
		}
		_, _ = io.WriteString(w, `{"amountCharged":"0.01"}`)
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := newTestClient(t, api.URL, func(cfg *Config) { cfg.HTTPClient = &http.Client{Transport: keyStripper{tr}} })
	for i := range 3 {
		if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
			t.Fatalf("charge %d: %v (a modified header reached a later request)", i, err)
		}
	}
}

func TestHTTPClientTimeoutHonoured(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := newTestClient(t, api.URL, func(cfg *Config) {
		cfg.Timeout = time.Hour
		cfg.HTTPClient = &http.Client{Transport: tr, Timeout: 20 * time.Millisecond}
	})
	_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	// Not sent if the timer fired before a connection was ready (a busy
	// machine), unknown otherwise; either way the 20ms one, not the hour.
	if o := OutcomeOf(err); o == OutcomeDeclined {
		t.Errorf("got outcome %v", o)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "per-call timeout 20ms") {
		t.Errorf("got %v; want the HTTPClient's 20ms timeout", err)
	}
}
