package sellertest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// Audience is the seller agent ID the test seller expects and the fake
// issuer puts in aud.
const Audience = "seller-1"

// The default plain-text refusals (PolicySeed) for a route priced 0.01 USD.
const (
	SeedMissing  = "ERROR: Missing KYAPay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya | pay | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
	SeedPay      = "ERROR: Missing pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The required amount is 0.01 USD."
	SeedDepleted = "ERROR: The given pay token is depleted. Please create and send a new pay token. The required amount is 0.01 USD."
)

// SeedInvalid is the plain-text refusal (PolicySeed) for a token that is
// present but invalid on a route accepting every type, with reason the
// refusal's caller-safe message ("Token has expired").
func SeedInvalid(reason string) string {
	return "ERROR: Invalid KYAPay token in the skyfire-pay-id header. " + reason + ". Please create an account at https://app.skyfire.xyz and create a kya | pay | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
}

// Clock is a settable clock, safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Seller is a test seller wired to a fake issuer.
type Seller struct {
	// Clock drives the issuer, the verifier and the middleware.
	Clock *Clock
	// Issuer is the fake Skyfire issuer and seller API.
	Issuer *kyapaytest.Issuer
	// Verifier trusts Issuer and expects Audience.
	Verifier *kyapay.Verifier
	// Charger charges through Issuer's fake charge API.
	Charger *charge.Client
	// Middleware is built from Verifier and Charger.
	Middleware *middleware.Middleware
}

// New starts a fake issuer and builds a seller around it; opts adjust the
// middleware configuration. Everything is closed when t ends.
func New(t testing.TB, opts ...func(*middleware.Config)) *Seller {
	t.Helper()
	clock := &Clock{}
	clock.ns.Store(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience(Audience), kyapaytest.WithClock(clock.Now))
	t.Cleanup(iss.Close)
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Clock:      clock.Now,
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   Audience,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	cc, err := charge.New(charge.Config{BaseURL: iss.APIBaseURL(), APIKey: charge.APIKey(iss.APIKey()),
		HTTPClient: iss.Client(), RetryBackoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := middleware.Config{Verifier: v, Charger: cc, Clock: clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := middleware.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &Seller{Clock: clock, Issuer: iss, Verifier: v, Charger: cc, Middleware: m}
}

// PayAfter is a 0.01 USD ChargeAfter requirement.
func PayAfter() middleware.Requirement {
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	return req
}

// Result is a recorded response.
type Result struct {
	// Status is the response status code.
	Status int
	// Header is the response header.
	Header http.Header
	// Body is the response body.
	Body string
}

// Do serves one GET /x through h with the token (if any) in skyfire-pay-id;
// mod may adjust the request first.
func Do(t testing.TB, h http.Handler, token string, mod ...func(*http.Request)) Result {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	if token != "" {
		r.Header.Set(kyapay.HeaderName, token)
	}
	for _, f := range mod {
		f(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return Result{w.Code, w.Header(), w.Body.String()}
}

// NewCountingServer starts an HTTP server for h that adds to written every
// byte it sends to clients, so a test can prove nothing left before a
// charge.
func NewCountingServer(h http.Handler, written *atomic.Int64) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = countingListener{srv.Listener, written}
	srv.Start()
	return srv
}

type countingListener struct {
	net.Listener
	written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.written}, nil
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.written.Add(int64(len(p)))
	return c.Conn.Write(p)
}

// SpentElsewhere mints a pay token whose whole balance (0.01) has already
// been charged by another seller process, so the middleware knows nothing
// of it and only the charge API can refuse it.
func (s *Seller) SpentElsewhere(t testing.TB) string {
	t.Helper()
	tok := s.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
	if _, err := s.Charger.Charge(context.Background(), tok, kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatal(err)
	}
	return tok
}

// ConcurrentGets sends n concurrent GET requests to url with token and
// counts the paid successes (200 with exactly paidBody) and the clean
// refusals (402 without any of paidBody). Any other answer fails the test.
func ConcurrentGets(t testing.TB, client *http.Client, url, token string, n int, paidBody string) (paid, refused int) {
	t.Helper()
	var ok, no atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set(kyapay.HeaderName, token)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && string(b) == paidBody:
				ok.Add(1)
			case resp.StatusCode == http.StatusPaymentRequired && !strings.Contains(string(b), paidBody):
				no.Add(1)
			default:
				t.Errorf("unexpected answer %d %q", resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), int(no.Load())
}
