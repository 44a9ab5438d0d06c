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
	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

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

func TestRefusalsSeedPolicy(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	pay := e.Middleware.MustWrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01")))
	anyTok := e.Middleware.MustWrap(okHandler, middleware.AnyToken())
	kya := e.Issuer.Mint(kyapay.TypeKYA)
	tests := []struct {
		name   string
		h      http.Handler
		token  string
		status int
		body   string
		code   kyapay.Code
	}{
		{"missing", anyTok, "", 402, sellertest.SeedMissing, kyapay.CodeTokenMissing},
		{"missing on paid route", pay, "", 402, sellertest.SeedPay, kyapay.CodeTokenMissing},
		{"garbage", anyTok, "not.a.token", 402, sellertest.SeedInvalid("Token is not a well-formed compact JWS"), kyapay.CodeTokenMalformed},
		{"expired", anyTok, e.Issuer.Mint(kyapay.TypePay, kyapaytest.ExpiresAt(e.Clock.Now().Add(-time.Hour))), 402, sellertest.SeedInvalid("Token has expired"), kyapay.CodeTokenExpired},
		{"wrong audience", anyTok, e.Issuer.Mint(kyapay.TypePay, kyapaytest.Audience("other")), 402, sellertest.SeedInvalid("Token is meant for another seller"), kyapay.CodeAudienceMismatch},
		{"foreign key", anyTok, e.Issuer.Mint(kyapay.TypePay, kyapaytest.SignWith(kyapaytest.NewKey(), "key-1")), 402, sellertest.SeedInvalid("Token signature is invalid"), kyapay.CodeSignatureInvalid},
		{"kya on paid route", pay, kya, 402, sellertest.SeedPay, kyapay.CodePayRequired},
		{"amount below price", pay, e.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("0.005")), 402, sellertest.SeedDepleted, kyapay.CodeAmountInsufficient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := sellertest.Do(t, tt.h, tt.token)
			if got.Status != tt.status || got.Body != tt.body {
				t.Fatalf("got %d %q; want %d %q", got.Status, got.Body, tt.status, tt.body)
			}
			if cc := got.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
			if code := got.Header.Get(middleware.CodeHeader); code != string(tt.code) {
				t.Errorf("%s = %q; want %q", middleware.CodeHeader, code, tt.code)
			}
			if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
		t.Errorf("charge API calls = %d; want 0 (all refusals are offline)", n)
	}
}

func TestRefusalsJSONAndStatusPolicy(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t, func(c *middleware.Config) { c.Policy = middleware.PolicyStatusCodes })
	pay := e.Middleware.MustWrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01")))
	for _, tt := range []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"missing", "", 403, "token_missing"},
		{"invalid", "a.b.c", 401, "token_malformed"},
		{"kya on paid route", e.Issuer.Mint(kyapay.TypeKYA), 403, "pay_required"},
		{"insufficient", e.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("0.001")), 402, "amount_insufficient"},
	} {
		got := sellertest.Do(t, pay, tt.token, func(r *http.Request) { r.Header.Set("Accept", "application/json") })
		if got.Status != tt.status {
			t.Errorf("%s: status %d; want %d", tt.name, got.Status, tt.status)
		}
		var body struct {
			Content []struct{ Type, Text string }
			IsError bool
			Struct  map[string]any `json:"structuredContent"`
		}
		if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
			t.Fatalf("%s: body %q: %v", tt.name, got.Body, err)
		}
		if !body.IsError || len(body.Content) != 1 || body.Content[0].Type != "text" || body.Content[0].Text == "" {
			t.Errorf("%s: not a CallToolResult error: %s", tt.name, got.Body)
		}
		if body.Struct["error"] != tt.code || body.Struct["requiredAmount"] != "0.01" {
			t.Errorf("%s: structuredContent = %v; want error %s, requiredAmount 0.01", tt.name, body.Struct, tt.code)
		}
	}
}

func TestJSONRPCRefusalIsWrapped(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, middleware.AnyToken())
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
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, middleware.Identity("email", "given_name"))
	full := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Human(map[string]any{"email": "a@b.c", "given_name": "Ada"}))
	if got := sellertest.Do(t, h, full); got.Status != 200 || !strings.HasPrefix(got.Body, "ok sub=") {
		t.Fatalf("kya with fields: %d %q", got.Status, got.Body)
	}
	partial := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Email("a@b.c"))
	if got := sellertest.Do(t, h, partial); got.Status != 402 || !strings.Contains(got.Body, "given_name") {
		t.Errorf("kya missing given_name: %d %q", got.Status, got.Body)
	}
	if got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay)); got.Status != 402 {
		t.Errorf("pay token on identity route: %d %q", got.Status, got.Body)
	}
	legacy := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Legacy(), kyapaytest.Human(map[string]any{"skyfireEmail": "old@b.c", "nameFirst": "Bo"}))
	if got := sellertest.Do(t, h, legacy); got.Status != 200 {
		t.Errorf("legacy kya with bid fields: %d %q", got.Status, got.Body)
	}
}

func TestChargeBefore(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	var ran atomic.Int32
	h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		okHandler.ServeHTTP(w, r)
	}), middleware.Pay(middleware.FixedPrice("0.01")))
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.03"))
	for i, want := range []string{"remaining=0.02", "remaining=0.01", "remaining=0"} {
		got := sellertest.Do(t, h, tok)
		if got.Status != 200 || !strings.Contains(got.Body, "charged=0.01 "+want) {
			t.Fatalf("request %d: %d %q; want %s", i, got.Status, got.Body, want)
		}
	}
	// The fourth is refused from the remembered balance, without a call.
	calls := e.Issuer.Requests(kyapaytest.EndpointCharge)
	if got := sellertest.Do(t, h, tok); got.Status != 402 || got.Body != sellertest.SeedDepleted {
		t.Fatalf("depleted: %d %q", got.Status, got.Body)
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != calls {
		t.Errorf("depleted token cost %d charge calls; want 0", n-calls)
	}
	if ran.Load() != 3 || e.Issuer.ChargeCount() != 3 {
		t.Errorf("handler ran %d times, ledger %d charges; want 3 and 3", ran.Load(), e.Issuer.ChargeCount())
	}
}

func TestDeclineIsRememberedUntilExpiry(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01")))
	// The token claims 10 USD but its balance was spent elsewhere.
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.005"))
	if got := sellertest.Do(t, h, tok); got.Status != 402 || got.Body != sellertest.SeedDepleted {
		t.Fatalf("first: %d %q", got.Status, got.Body)
	}
	if got := sellertest.Do(t, h, tok); got.Status != 402 {
		t.Fatalf("second: %d %q", got.Status, got.Body)
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 1 {
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
				e := sellertest.New(t, func(c *middleware.Config) { c.ChargeTimeout = 200 * time.Millisecond })
				e.Issuer.InjectFault(tt.fault)
				req := middleware.Pay(middleware.FixedPrice("0.01"))
				req.Timing = timing
				var ran atomic.Int32
				h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ran.Add(1)
					io.WriteString(w, "paid content")
				}), req)
				got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay))
				if got.Status != http.StatusBadGateway || !strings.Contains(got.Body, "not pay again") {
					t.Fatalf("got %d %q; want 502 telling the agent not to pay again", got.Status, got.Body)
				}
				if strings.Contains(got.Body, "paid content") {
					t.Error("paid content leaked with an unknown charge")
				}
				if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 1 {
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
	e := sellertest.New(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there now
	cc, err := charge.New(charge.Config{BaseURL: base, APIKey: "k", RetryBackoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	m, err := middleware.New(middleware.Config{Verifier: e.Verifier, Charger: cc})
	if err != nil {
		t.Fatal(err)
	}
	got := sellertest.Do(t, m.MustWrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01"))), e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 503 || got.Header.Get("Retry-After") == "" {
		t.Errorf("got %d %q (Retry-After %q); want 503 with Retry-After", got.Status, got.Body, got.Header.Get("Retry-After"))
	}
}

func TestChargeAfterDeliversOnlyPaidContent(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	after := func(h http.HandlerFunc) http.Handler {
		req := middleware.Pay(middleware.FixedPrice("0.01"))
		req.Timing = middleware.ChargeAfter
		return e.Middleware.MustWrap(h, req)
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
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
	got := sellertest.Do(t, after(streaming(201)), tok)
	if got.Status != 201 || got.Body != "part one;part two" || got.Header.Get("X-Secret-Header") != "leak" {
		t.Fatalf("success: %d %q %v", got.Status, got.Body, got.Header)
	}
	if e.Issuer.ChargeCount() != 1 {
		t.Fatalf("ledger = %d; want 1", e.Issuer.ChargeCount())
	}

	// Handler fails after writing and flushing: its error goes out, nothing is charged.
	got = sellertest.Do(t, after(streaming(500)), e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || e.Issuer.ChargeCount() != 1 {
		t.Fatalf("handler failure: %d %q, ledger %d; want 500 and no new charge", got.Status, got.Body, e.Issuer.ChargeCount())
	}

	// Declined charge (the same token, now at zero): the client gets the
	// 402 and not one byte or header of the handler's response.
	got = sellertest.Do(t, after(streaming(200)), tok)
	if got.Status != 402 || strings.Contains(got.Body, "part") || got.Header.Get("X-Secret-Header") != "" {
		t.Fatalf("declined: %d %q %v", got.Status, got.Body, got.Header)
	}

	// Over the buffer limit: not delivered, not charged.
	small := sellertest.New(t, func(c *middleware.Config) { c.MaxBufferBytes = 4 })
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	got = sellertest.Do(t, small.Middleware.MustWrap(streaming(200), req), small.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || small.Issuer.ChargeCount() != 0 {
		t.Fatalf("overflow: %d %q, ledger %d", got.Status, got.Body, small.Issuer.ChargeCount())
	}
}

func TestChargeAfterOverRealConnection(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	// The charge is held until the test has checked that the client has
	// seen nothing yet.
	held := make(chan struct{})
	release := make(chan struct{})
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Latency: time.Nanosecond, Times: 1,
		OnApply: func() { close(held); <-release }})
	srv := httptest.NewServer(e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early bytes")
		w.(http.Flusher).Flush()
	}), req))
	defer srv.Close()
	r, _ := http.NewRequest("GET", srv.URL, nil)
	r.Header.Set("skyfire-pay-id", e.Issuer.Mint(kyapay.TypePay))
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
			e := sellertest.New(t)
			req := middleware.Pay(middleware.FixedPrice("0.01"))
			req.Timing = timing
			var ran atomic.Int32
			srv := httptest.NewServer(e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ran.Add(1)
				io.WriteString(w, "content")
			}), req))
			defer srv.Close()
			tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.13"))
			ok, refused := sellertest.ConcurrentGets(t, srv.Client(), srv.URL, tok, n, "content")
			if ok != m || refused != n-m {
				t.Errorf("successes %d, refusals %d; want %d and %d", ok, refused, m, n-m)
			}
			// Charge-before runs the handler only after a confirmed charge,
			// so exactly m times. Charge-after runs it before charging, for
			// every request not already refused offline: once the token is
			// known to be depleted, later requests are refused before the
			// handler, so the count lies anywhere in [m, n] depending on
			// the interleaving.
			got := ran.Load()
			if timing == middleware.ChargeBefore && got != m {
				t.Errorf("handler ran %d times; want %d", got, m)
			}
			if timing == middleware.ChargeAfter && (got < m || got > n) {
				t.Errorf("handler ran %d times; want between %d and %d", got, m, n)
			}
			if c := e.Issuer.ChargeCount(); c != m {
				t.Errorf("ledger has %d charges; want %d", c, m)
			}
			if bal, _ := e.Issuer.Balance(kyapaytest.TokenID(tok)); !bal.IsZero() {
				t.Errorf("balance left %v; want 0", bal)
			}
		})
	}
}

func TestServicePriceMode(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, middleware.Pay(middleware.ServicePrice()))
	got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 200 || !strings.Contains(got.Body, "charged="+e.Issuer.ServicePrice().String()) {
		t.Fatalf("service price: %d %q", got.Status, got.Body)
	}
	// With no local price, a pay-missing refusal states no amount.
	got = sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypeKYA))
	if got.Status != 402 || strings.Contains(got.Body, "required amount") {
		t.Errorf("kya on service-price route: %d %q", got.Status, got.Body)
	}
}

func TestPriceFunc(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, middleware.Pay(middleware.PriceFunc(func(r *http.Request) (kyapay.Amount, error) {
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
	tok := e.Issuer.Mint(kyapay.TypePay)
	q := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.URL.RawQuery = "size=" + v }
	}
	if got := sellertest.Do(t, h, tok, q("big")); !strings.Contains(got.Body, "charged=0.05") {
		t.Errorf("big: %d %q", got.Status, got.Body)
	}
	if got := sellertest.Do(t, h, tok, q("free")); got.Status != 200 || strings.Contains(got.Body, "charged") {
		t.Errorf("free: %d %q", got.Status, got.Body)
	}
	if got := sellertest.Do(t, h, tok, q("bad")); got.Status != 500 || strings.Contains(got.Body, "backend") {
		t.Errorf("bad: %d %q; want 500 without internals", got.Status, got.Body)
	}
}

func TestKeyRotationDuringTraffic(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, middleware.AnyToken())
	if got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypeKYA)); got.Status != 200 {
		t.Fatalf("before rotation: %d %q", got.Status, got.Body)
	}
	fetches := e.Issuer.JWKSFetches()
	e.Issuer.RotateKey()
	// Past the unknown-kid window since the start-up fetch.
	e.Clock.Advance(time.Minute)
	var wg sync.WaitGroup
	tok := e.Issuer.Mint(kyapay.TypeKYA)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := sellertest.Do(t, h, tok); got.Status != 200 {
				t.Errorf("after rotation: %d %q", got.Status, got.Body)
			}
		}()
	}
	wg.Wait()
	if n := e.Issuer.JWKSFetches() - fetches; n != 1 {
		t.Errorf("JWKS fetches for the new kid = %d; want 1", n)
	}
}

func TestRequireRejectsBadRequirements(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	for name, req := range map[string]middleware.Requirement{
		"bad price":         middleware.Pay(middleware.FixedPrice("0.0000001")),
		"zero price":        middleware.Pay(middleware.FixedPrice("0")),
		"float-ish price":   middleware.Pay(middleware.FixedPrice("1e-2")),
		"nil price func":    middleware.Pay(middleware.PriceFunc(nil)),
		"unknown field":     middleware.Identity("nationality"),
		"kya-only but paid": {Types: kyapay.TypeKYA, Price: middleware.FixedPrice("0.01")},
	} {
		if _, err := e.Middleware.Require(req); err == nil {
			t.Errorf("%s: Require accepted", name)
		}
	}
	noCharger, err := middleware.New(middleware.Config{Verifier: e.Verifier})
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
	e := sellertest.New(t)
	tok := e.Issuer.Mint(kyapay.TypeKYA)
	got := sellertest.Do(t, e.Middleware.MustWrap(okHandler, middleware.AnyToken()), tok, func(r *http.Request) {
		r.Header.Add("skyfire-pay-id", tok)
	})
	if got.Status != 402 {
		t.Errorf("two token headers: %d %q", got.Status, got.Body)
	}
}

func TestClientGoneBeforeChargeAfter(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	ctx, cancel := context.WithCancel(context.Background())
	h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "content")
		cancel() // the client hangs up while the handler works
	}), req)
	r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
	r.Header.Set("skyfire-pay-id", e.Issuer.Mint(kyapay.TypePay))
	h.ServeHTTP(httptest.NewRecorder(), r)
	if e.Issuer.ChargeCount() != 0 || e.Issuer.Requests(kyapaytest.EndpointCharge) != 0 {
		t.Errorf("charged %d for content that could not be delivered", e.Issuer.ChargeCount())
	}
}

func TestCustomHeaderName(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t, func(c *middleware.Config) { c.Header = "kyapay-token" })
	h := e.Middleware.MustWrap(okHandler, middleware.AnyToken())
	tok := e.Issuer.Mint(kyapay.TypeKYA)
	if got := sellertest.Do(t, h, "", func(r *http.Request) { r.Header.Set("KYAPay-Token", tok) }); got.Status != 200 {
		t.Errorf("token in the custom header: %d %q", got.Status, got.Body)
	}
	got := sellertest.Do(t, h, tok) // sent in skyfire-pay-id, which this seller does not read
	if got.Status != 402 || !strings.Contains(got.Body, "in the kyapay-token header") {
		t.Errorf("token in the wrong header: %d %q", got.Status, got.Body)
	}
	if _, err := middleware.New(middleware.Config{Verifier: e.Verifier, Header: "bad header"}); err == nil {
		t.Error("header name with a space accepted")
	}
}

// TestChargeAfterLateFailure: a net/http handler that writes content and
// then sets a failure status is not charged, and its content is dropped.
func TestChargeAfterLateFailure(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = middleware.ChargeAfter
	h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "paid content;")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "upstream failed")
		w.WriteHeader(http.StatusOK) // a later success does not undo the failure
	}), req)
	got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 502 || got.Body != "upstream failed" || e.Issuer.ChargeCount() != 0 {
		t.Fatalf("got %d %q, ledger %d; want 502 \"upstream failed\" and no charge", got.Status, got.Body, e.Issuer.ChargeCount())
	}
}
