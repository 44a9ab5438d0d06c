package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
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

const (
	seedMissing = "ERROR: Missing KYAPay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya | pay | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
	seedPay     = "ERROR: Missing pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The required amount is 0.01 USD."
	seedDep     = "ERROR: The given pay token is depleted. Please create and send a new pay token. The required amount is 0.01 USD."
)

// env is a seller wired to a fake issuer: verifier (with a real jwks
// cache), charge client and middleware.
type env struct {
	clock   *fakeClock
	iss     *kyapaytest.Issuer
	v       *kyapay.Verifier
	charger *charge.Client
	m       *middleware.Middleware
}

type envOption func(*middleware.Config)

// fakeClock is a settable clock shared by the issuer, the verifier (and
// its JWKS cache) and the middleware.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	clock := newFakeClock()
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"), kyapaytest.WithClock(clock.Now))
	t.Cleanup(iss.Close)
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Clock:      clock.Now,
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
	cfg := middleware.Config{Verifier: v, Charger: cc, Clock: clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := middleware.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{clock: clock, iss: iss, v: v, charger: cc, m: m}
}

// okHandler answers 200 with the buyer's sub and the receipt, if any.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := kyapay.FromContext(r.Context())
	if !ok {
		http.Error(w, "no claims in context", 500)
		return
	}
	body := "ok sub=" + c.Subject
	if rc, ok := middleware.ReceiptFromContext(r.Context()); ok {
		body += " charged=" + rc.AmountCharged.String() + " remaining=" + rc.RemainingBalance.String()
	}
	io.WriteString(w, body)
})

type result struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, h http.Handler, token string, mod ...func(*http.Request)) result {
	t.Helper()
	r := httptest.NewRequest("GET", "/x", nil)
	if token != "" {
		r.Header.Set("skyfire-pay-id", token)
	}
	for _, f := range mod {
		f(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return result{w.Code, w.Header(), w.Body.String()}
}

func TestRefusalsSeedPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pay := e.m.Wrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01")))
	anyTok := e.m.Wrap(okHandler, middleware.AnyToken())
	kya := e.iss.Mint(kyapay.TypeKYA)
	tests := []struct {
		name   string
		h      http.Handler
		token  string
		status int
		body   string
	}{
		{"missing", anyTok, "", 402, seedMissing},
		{"missing on paid route", pay, "", 402, seedPay},
		{"garbage", anyTok, "not.a.token", 402, seedMissing},
		{"expired", anyTok, e.iss.Mint(kyapay.TypePay, kyapaytest.ExpiresAt(e.clock.Now().Add(-time.Hour))), 402, seedMissing},
		{"wrong audience", anyTok, e.iss.Mint(kyapay.TypePay, kyapaytest.Audience("other")), 402, seedMissing},
		{"foreign key", anyTok, e.iss.Mint(kyapay.TypePay, kyapaytest.SignWith(kyapaytest.NewKey(), "key-1")), 402, seedMissing},
		{"kya on paid route", pay, kya, 402, seedPay},
		{"amount below price", pay, e.iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.005")), 402, seedDep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := do(t, tt.h, tt.token)
			if got.status != tt.status || got.body != tt.body {
				t.Fatalf("got %d %q; want %d %q", got.status, got.body, tt.status, tt.body)
			}
			if cc := got.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
			if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
	if n := e.iss.Requests(kyapaytest.EndpointCharge); n != 0 {
		t.Errorf("charge API calls = %d; want 0 (all refusals are offline)", n)
	}
}

func TestRefusalsJSONAndStatusPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) { c.Policy = middleware.PolicyStatusCodes })
	pay := e.m.Wrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01")))
	for _, tt := range []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"missing", "", 403, "token_missing"},
		{"invalid", "a.b.c", 401, "token_malformed"},
		{"kya on paid route", e.iss.Mint(kyapay.TypeKYA), 403, "pay_required"},
		{"insufficient", e.iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.001")), 402, "amount_insufficient"},
	} {
		got := do(t, pay, tt.token, func(r *http.Request) { r.Header.Set("Accept", "application/json") })
		if got.status != tt.status {
			t.Errorf("%s: status %d; want %d", tt.name, got.status, tt.status)
		}
		var body struct {
			Content []struct{ Type, Text string }
			IsError bool
			Struct  map[string]any `json:"structuredContent"`
		}
		if err := json.Unmarshal([]byte(got.body), &body); err != nil {
			t.Fatalf("%s: body %q: %v", tt.name, got.body, err)
		}
		if !body.IsError || len(body.Content) != 1 || body.Content[0].Type != "text" || body.Content[0].Text == "" {
			t.Errorf("%s: not a CallToolResult error: %s", tt.name, got.body)
		}
		if body.Struct["error"] != tt.code || body.Struct["requiredAmount"] != "0.01" {
			t.Errorf("%s: structuredContent = %v; want error %s, requiredAmount 0.01", tt.name, body.Struct, tt.code)
		}
	}
}

func TestJSONRPCRefusalIsWrapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.m.Wrap(okHandler, middleware.AnyToken())
	r := httptest.NewRequest("POST", "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var resp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  struct {
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.JSONRPC != "2.0" || string(resp.ID) != "7" || !resp.Result.IsError {
		t.Fatalf("JSON-RPC refusal = %d %s (%v)", w.Code, w.Body, err)
	}
}

func TestIdentityRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.m.Wrap(okHandler, middleware.Identity("email", "given_name"))
	full := e.iss.Mint(kyapay.TypeKYA, kyapaytest.Human(map[string]any{"email": "a@b.c", "given_name": "Ada"}))
	if got := do(t, h, full); got.status != 200 || !strings.HasPrefix(got.body, "ok sub=") {
		t.Fatalf("kya with fields: %d %q", got.status, got.body)
	}
	partial := e.iss.Mint(kyapay.TypeKYA, kyapaytest.Email("a@b.c"))
	if got := do(t, h, partial); got.status != 402 || !strings.Contains(got.body, "given_name") {
		t.Errorf("kya missing given_name: %d %q", got.status, got.body)
	}
	if got := do(t, h, e.iss.Mint(kyapay.TypePay)); got.status != 402 {
		t.Errorf("pay token on identity route: %d %q", got.status, got.body)
	}
	legacy := e.iss.Mint(kyapay.TypeKYA, kyapaytest.Legacy(), kyapaytest.Human(map[string]any{"skyfireEmail": "old@b.c", "nameFirst": "Bo"}))
	if got := do(t, h, legacy); got.status != 200 {
		t.Errorf("legacy kya with bid fields: %d %q", got.status, got.body)
	}
}

func TestChargeBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ran atomic.Int32
	h := e.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		okHandler.ServeHTTP(w, r)
	}), middleware.Pay(middleware.FixedPrice("0.01")))
	tok := e.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0.03"))
	for i, want := range []string{"remaining=0.02", "remaining=0.01", "remaining=0"} {
		got := do(t, h, tok)
		if got.status != 200 || !strings.Contains(got.body, "charged=0.01 "+want) {
			t.Fatalf("request %d: %d %q; want %s", i, got.status, got.body, want)
		}
	}
	// The fourth is refused from the remembered balance, without a call.
	calls := e.iss.Requests(kyapaytest.EndpointCharge)
	if got := do(t, h, tok); got.status != 402 || got.body != seedDep {
		t.Fatalf("depleted: %d %q", got.status, got.body)
	}
	if n := e.iss.Requests(kyapaytest.EndpointCharge); n != calls {
		t.Errorf("depleted token cost %d charge calls; want 0", n-calls)
	}
	if ran.Load() != 3 || e.iss.ChargeCount() != 3 {
		t.Errorf("handler ran %d times, ledger %d charges; want 3 and 3", ran.Load(), e.iss.ChargeCount())
	}
}

func TestDeclineIsRememberedUntilExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.m.Wrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01")))
	// The token claims 10 USD but its balance was spent elsewhere.
	tok := e.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0.005"))
	if got := do(t, h, tok); got.status != 402 || got.body != seedDep {
		t.Fatalf("first: %d %q", got.status, got.body)
	}
	if got := do(t, h, tok); got.status != 402 {
		t.Fatalf("second: %d %q", got.status, got.body)
	}
	if n := e.iss.Requests(kyapaytest.EndpointCharge); n != 1 {
		t.Errorf("charge calls = %d; want 1 (the decline is remembered)", n)
	}
}

func TestChargeUnknownIsNever402(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		fault kyapaytest.Fault
	}{
		{"timeout after charge", kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true}},
		{"5xx", kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 503}},
		{"garbage 200", kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, ChargeFirst: true, Status: 200, Body: "{garbage"}},
		{"connection dropped after charge", kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, ChargeFirst: true, CloseConnection: true}},
	} {
		for _, timing := range []middleware.ChargeTiming{middleware.ChargeBefore, middleware.ChargeAfter} {
			t.Run(tt.name+"/"+timing.String(), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *middleware.Config) { c.ChargeTimeout = 200 * time.Millisecond })
				e.iss.InjectFault(tt.fault)
				req := middleware.Pay(middleware.FixedPrice("0.01"))
				req.Timing = timing
				var ran atomic.Int32
				h := e.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ran.Add(1)
					io.WriteString(w, "paid content")
				}), req)
				got := do(t, h, e.iss.Mint(kyapay.TypePay))
				if got.status != http.StatusBadGateway || !strings.Contains(got.body, "not pay again") {
					t.Fatalf("got %d %q; want 502 telling the agent not to pay again", got.status, got.body)
				}
				if strings.Contains(got.body, "paid content") {
					t.Error("paid content leaked with an unknown charge")
				}
				if n := e.iss.Requests(kyapaytest.EndpointCharge); n != 1 {
					t.Errorf("charge requests = %d; want exactly 1 (no retry after sending)", n)
				}
				if timing == middleware.ChargeBefore && ran.Load() != 0 {
					t.Error("handler ran before a confirmed charge")
				}
			})
		}
	}
}

func TestChargeAPIUnreachableIs503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there now
	cc, err := charge.New(charge.Config{BaseURL: base, APIKey: "k", RetryBackoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: e.v, Charger: cc})
	if err != nil {
		t.Fatal(err)
	}
	got := do(t, m.Wrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01"))), e.iss.Mint(kyapay.TypePay))
	if got.status != 503 || got.header.Get("Retry-After") == "" {
		t.Errorf("got %d %q (Retry-After %q); want 503 with Retry-After", got.status, got.body, got.header.Get("Retry-After"))
	}
}

func TestChargeAfterDeliversOnlyPaidContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	after := func(h http.HandlerFunc) http.Handler {
		req := middleware.Pay(middleware.FixedPrice("0.01"))
		req.Timing = middleware.ChargeAfter
		return e.m.Wrap(h, req)
	}
	streaming := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Secret-Header", "leak")
			w.WriteHeader(status)
			io.WriteString(w, "part one;")
			w.(http.Flusher).Flush()
			_ = http.NewResponseController(w).Flush()
			if _, _, err := http.NewResponseController(w).Hijack(); err == nil {
				panic("hijack reached the connection")
			}
			io.WriteString(w, "part two")
		}
	}

	// Success: charged once, full response delivered after the charge.
	tok := e.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
	got := do(t, after(streaming(201)), tok)
	if got.status != 201 || got.body != "part one;part two" || got.header.Get("X-Secret-Header") != "leak" {
		t.Fatalf("success: %d %q %v", got.status, got.body, got.header)
	}
	if e.iss.ChargeCount() != 1 {
		t.Fatalf("ledger = %d; want 1", e.iss.ChargeCount())
	}

	// Handler fails after writing and flushing: its error goes out, nothing is charged.
	got = do(t, after(streaming(500)), e.iss.Mint(kyapay.TypePay))
	if got.status != 500 || e.iss.ChargeCount() != 1 {
		t.Fatalf("handler failure: %d %q, ledger %d; want 500 and no new charge", got.status, got.body, e.iss.ChargeCount())
	}

	// Declined charge (the same token, now at zero): the client gets the
	// 402 and not one byte or header of the handler's response.
	got = do(t, after(streaming(200)), tok)
	if got.status != 402 || strings.Contains(got.body, "part") || got.header.Get("X-Secret-Header") != "" {
		t.Fatalf("declined: %d %q %v", got.status, got.body, got.header)
	}

	// Over the buffer limit: not delivered, not charged.
	small := newEnv(t, func(c *middleware.Config) { c.MaxBufferBytes = 4 })
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	got = do(t, small.m.Wrap(streaming(200), req), small.iss.Mint(kyapay.TypePay))
	if got.status != 500 || small.iss.ChargeCount() != 0 {
		t.Fatalf("overflow: %d %q, ledger %d", got.status, got.body, small.iss.ChargeCount())
	}
}

func TestChargeAfterOverRealConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	// The charge is held until the test has checked that the client has
	// seen nothing yet.
	held := make(chan struct{})
	release := make(chan struct{})
	e.iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Latency: time.Nanosecond, Times: 1,
		OnApply: func() { close(held); <-release }})
	srv := httptest.NewServer(e.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early bytes")
		w.(http.Flusher).Flush()
	}), req))
	defer srv.Close()
	r, _ := http.NewRequest("GET", srv.URL, nil)
	r.Header.Set("skyfire-pay-id", e.iss.Mint(kyapay.TypePay))
	gotResp := make(chan *http.Response, 1)
	go func() {
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Error(err)
			close(gotResp)
			return
		}
		gotResp <- resp
	}()
	<-held
	select {
	case <-gotResp:
		t.Fatal("client received response headers before the charge was confirmed")
	default:
	}
	close(release)
	resp := <-gotResp
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "early bytes" {
		t.Errorf("got %d %q", resp.StatusCode, b)
	}
}

func TestParallelChargesAgainstExactBalance(t *testing.T) {
	t.Parallel()
	const n, m = 40, 13
	for _, timing := range []middleware.ChargeTiming{middleware.ChargeBefore, middleware.ChargeAfter} {
		t.Run(timing.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			req := middleware.Pay(middleware.FixedPrice("0.01"))
			req.Timing = timing
			var ran atomic.Int32
			srv := httptest.NewServer(e.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ran.Add(1)
				io.WriteString(w, "content")
			}), req))
			defer srv.Close()
			tok := e.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0.13"))
			var ok, refused atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, _ := http.NewRequest("GET", srv.URL, nil)
					r.Header.Set("skyfire-pay-id", tok)
					resp, err := srv.Client().Do(r)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode == 200 && string(b) == "content":
						ok.Add(1)
					case resp.StatusCode == 402 && !strings.Contains(string(b), "content"):
						refused.Add(1)
					default:
						t.Errorf("unexpected %d %q", resp.StatusCode, b)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != m || refused.Load() != n-m {
				t.Errorf("successes %d, refusals %d; want %d and %d", ok.Load(), refused.Load(), m, n-m)
			}
			if c := e.iss.ChargeCount(); c != m {
				t.Errorf("ledger has %d charges; want %d", c, m)
			}
			if bal, _ := e.iss.Balance(kyapaytest.TokenID(tok)); !bal.IsZero() {
				t.Errorf("balance left %v; want 0", bal)
			}
		})
	}
}

func TestServicePriceMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.m.Wrap(okHandler, middleware.Pay(middleware.ServicePrice()))
	got := do(t, h, e.iss.Mint(kyapay.TypePay))
	if got.status != 200 || !strings.Contains(got.body, "charged="+e.iss.ServicePrice().String()) {
		t.Fatalf("service price: %d %q", got.status, got.body)
	}
	// With no local price, a pay-missing refusal states no amount.
	got = do(t, h, e.iss.Mint(kyapay.TypeKYA))
	if got.status != 402 || strings.Contains(got.body, "required amount") {
		t.Errorf("kya on service-price route: %d %q", got.status, got.body)
	}
}

func TestPriceFunc(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.m.Wrap(okHandler, middleware.Pay(middleware.PriceFunc(func(r *http.Request) (kyapay.Amount, error) {
		switch r.URL.Query().Get("size") {
		case "big":
			return kyapay.MustParseAmount("0.05"), nil
		case "free":
			return kyapay.Amount{}, nil
		case "bad":
			return kyapay.Amount{}, errors.New("pricing backend down")
		}
		return kyapay.MustParseAmount("0.01"), nil
	})))
	tok := e.iss.Mint(kyapay.TypePay)
	q := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.URL.RawQuery = "size=" + v }
	}
	if got := do(t, h, tok, q("big")); !strings.Contains(got.body, "charged=0.05") {
		t.Errorf("big: %d %q", got.status, got.body)
	}
	if got := do(t, h, tok, q("free")); got.status != 200 || strings.Contains(got.body, "charged") {
		t.Errorf("free: %d %q", got.status, got.body)
	}
	if got := do(t, h, tok, q("bad")); got.status != 500 || strings.Contains(got.body, "backend") {
		t.Errorf("bad: %d %q; want 500 without internals", got.status, got.body)
	}
}

func TestKeyRotationDuringTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.m.Wrap(okHandler, middleware.AnyToken())
	if got := do(t, h, e.iss.Mint(kyapay.TypeKYA)); got.status != 200 {
		t.Fatalf("before rotation: %d %q", got.status, got.body)
	}
	fetches := e.iss.JWKSFetches()
	e.iss.RotateKey()
	// Past the unknown-kid window since the start-up fetch.
	e.clock.Advance(time.Minute)
	var wg sync.WaitGroup
	tok := e.iss.Mint(kyapay.TypeKYA)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := do(t, h, tok); got.status != 200 {
				t.Errorf("after rotation: %d %q", got.status, got.body)
			}
		}()
	}
	wg.Wait()
	if n := e.iss.JWKSFetches() - fetches; n != 1 {
		t.Errorf("JWKS fetches for the new kid = %d; want 1", n)
	}
}

func TestRequireRejectsBadRequirements(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, req := range map[string]middleware.Requirement{
		"bad price":         middleware.Pay(middleware.FixedPrice("0.0000001")),
		"zero price":        middleware.Pay(middleware.FixedPrice("0")),
		"float-ish price":   middleware.Pay(middleware.FixedPrice("1e-2")),
		"nil price func":    middleware.Pay(middleware.PriceFunc(nil)),
		"unknown field":     middleware.Identity("nationality"),
		"kya-only but paid": {Types: kyapay.TypeKYA, Price: middleware.FixedPrice("0.01")},
	} {
		if _, err := e.m.Require(req); err == nil {
			t.Errorf("%s: Require accepted", name)
		}
	}
	noCharger, err := middleware.New(middleware.Config{Verifier: e.v})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noCharger.Require(middleware.Pay(middleware.FixedPrice("0.01"))); err == nil {
		t.Error("priced route without Charger accepted")
	}
	if _, err := middleware.New(middleware.Config{}); err == nil {
		t.Error("New without Verifier accepted")
	}
}

func TestDuplicateHeaderRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.iss.Mint(kyapay.TypeKYA)
	got := do(t, e.m.Wrap(okHandler, middleware.AnyToken()), tok, func(r *http.Request) {
		r.Header.Add("skyfire-pay-id", tok)
	})
	if got.status != 402 {
		t.Errorf("two token headers: %d %q", got.status, got.body)
	}
}

func TestClientGoneBeforeChargeAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	ctx, cancel := context.WithCancel(context.Background())
	h := e.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "content")
		cancel() // the client hangs up while the handler works
	}), req)
	r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
	r.Header.Set("skyfire-pay-id", e.iss.Mint(kyapay.TypePay))
	h.ServeHTTP(httptest.NewRecorder(), r)
	if e.iss.ChargeCount() != 0 || e.iss.Requests(kyapaytest.EndpointCharge) != 0 {
		t.Errorf("charged %d for content that could not be delivered", e.iss.ChargeCount())
	}
}

func TestCustomHeaderName(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) { c.Header = "kyapay-token" })
	h := e.m.Wrap(okHandler, middleware.AnyToken())
	tok := e.iss.Mint(kyapay.TypeKYA)
	if got := do(t, h, "", func(r *http.Request) { r.Header.Set("KYAPay-Token", tok) }); got.status != 200 {
		t.Errorf("token in the custom header: %d %q", got.status, got.body)
	}
	got := do(t, h, tok) // sent in skyfire-pay-id, which this seller does not read
	if got.status != 402 || !strings.Contains(got.body, "in the kyapay-token header") {
		t.Errorf("token in the wrong header: %d %q", got.status, got.body)
	}
	if _, err := middleware.New(middleware.Config{Verifier: e.v, Header: "bad header"}); err == nil {
		t.Error("header name with a space accepted")
	}
}

// TestChargeAfterLateFailure: a net/http handler that writes content and
// then sets a failure status is not charged, and its content is dropped.
func TestChargeAfterLateFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	h := e.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "paid content;")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "upstream failed")
		w.WriteHeader(http.StatusOK) // a later success does not undo the failure
	}), req)
	got := do(t, h, e.iss.Mint(kyapay.TypePay))
	if got.status != 502 || got.body != "upstream failed" || e.iss.ChargeCount() != 0 {
		t.Fatalf("got %d %q, ledger %d; want 502 \"upstream failed\" and no charge", got.status, got.body, e.iss.ChargeCount())
	}
}
