package kyapayecho_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// The core middleware's plain-text refusals (PolicySeed, FormatAuto).
const (
	seedMissing = "ERROR: Missing KYAPay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya | pay | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
	seedPay     = "ERROR: Missing pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The required amount is 0.01 USD."
	seedDep     = "ERROR: The given pay token is depleted. Please create and send a new pay token. The required amount is 0.01 USD."
)

// env is a seller wired to a fake issuer: a verifier (with a real JWKS
// cache), a charge client and a core middleware, all on one fixed clock.
type env struct {
	iss *kyapaytest.Issuer
	cc  *charge.Client
	m   *middleware.Middleware
}

func newEnv(t testing.TB) *env {
	t.Helper()
	now := func() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"), kyapaytest.WithClock(now))
	t.Cleanup(iss.Close)
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Clock:      now,
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(),
		Audience:   "seller-1",
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
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc, Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	return &env{iss: iss, cc: cc, m: m}
}

// payAfter is a 0.01 USD ChargeAfter requirement.
func payAfter() middleware.Requirement {
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	return req
}

type result struct {
	status int
	header http.Header
	body   string
}

// do serves one GET /x with the token (if any) through h.
func do(t testing.TB, h http.Handler, token string) result {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	if token != "" {
		r.Header.Set("skyfire-pay-id", token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return result{w.Code, w.Header(), w.Body.String()}
}

// spentElsewhere mints a pay token whose whole balance (0.01) has been
// charged by another seller process, so the middleware knows nothing of it.
func (e *env) spentElsewhere(t testing.TB) string {
	t.Helper()
	tok := e.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
	if _, err := e.cc.Charge(context.Background(), tok, kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatal(err)
	}
	return tok
}

// counter counts handler runs.
type counter struct{ n atomic.Int32 }

func (c *counter) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(ctx echo.Context) error {
			c.n.Add(1)
			return next(ctx)
		}
	}
}
func (c *counter) count() int { return int(c.n.Load()) }

// newCountingServer starts an HTTP server for h whose connections count in
// written the bytes sent to clients.
func newCountingServer(h http.Handler, written *atomic.Int64) *httptest.Server {
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
