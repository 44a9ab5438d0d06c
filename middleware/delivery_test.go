package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// bothTimings runs f once per charge timing.
func bothTimings(t *testing.T, f func(t *testing.T, timing middleware.ChargeTiming)) {
	for _, timing := range []middleware.ChargeTiming{middleware.ChargeBefore, middleware.ChargeAfter} {
		t.Run(timing.String(), func(t *testing.T) {
			t.Parallel()
			f(t, timing)
		})
	}
}

func payReq(timing middleware.ChargeTiming) middleware.Requirement {
	req := middleware.Pay(middleware.FixedPrice("0.01"))
	req.Timing = timing
	return req
}

func TestHEADIsVerifiedButNeverCharged(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		e := sellertest.New(t)
		mux := http.NewServeMux()
		mux.Handle("GET /x", e.Middleware.MustWrap(okHandler, payReq(timing)))
		tok := e.Issuer.Mint(kyapay.TypePay)
		head := func(r *http.Request) { r.Method = http.MethodHead }
		got := sellertest.Do(t, mux, tok, head)
		if got.Status != 200 {
			t.Fatalf("HEAD with a valid token: %d %q", got.Status, got.Body)
		}
		if n := e.Issuer.ChargeCount(); n != 0 {
			t.Errorf("HEAD charged %d times; want 0", n)
		}
		// A HEAD without a token is still refused: it is verified.
		if got := sellertest.Do(t, mux, "", head); got.Status != 402 {
			t.Errorf("HEAD without a token: %d; want 402", got.Status)
		}
		// And GET is charged as usual.
		if got := sellertest.Do(t, mux, tok); got.Status != 200 || e.Issuer.ChargeCount() != 1 {
			t.Errorf("GET: %d, %d charges; want 200 and 1", got.Status, e.Issuer.ChargeCount())
		}
	})
}

func TestNotModifiedIsNeverCharged(t *testing.T) {
	t.Parallel()
	modified := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	content := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "report.txt", modified, strings.NewReader("the report"))
	})
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		e := sellertest.New(t)
		h := e.Middleware.MustWrap(content, payReq(timing))
		tok := e.Issuer.Mint(kyapay.TypePay)
		ims := func(r *http.Request) { r.Header.Set("If-Modified-Since", modified.Format(http.TimeFormat)) }
		if got := sellertest.Do(t, h, tok, ims); got.Status != http.StatusNotModified {
			t.Fatalf("conditional GET: %d %q; want 304", got.Status, got.Body)
		}
		if n := e.Issuer.ChargeCount(); n != 0 {
			t.Errorf("304 charged %d times; want 0", n)
		}
		// A conditional request whose validator is stale gets the content
		// and is charged exactly once.
		stale := func(r *http.Request) {
			r.Header.Set("If-Modified-Since", modified.Add(-time.Hour).Format(http.TimeFormat))
		}
		if got := sellertest.Do(t, h, tok, stale); got.Status != 200 || got.Body != "the report" {
			t.Fatalf("stale conditional GET: %d %q", got.Status, got.Body)
		}
		if n := e.Issuer.ChargeCount(); n != 1 {
			t.Errorf("200 after a stale validator charged %d times; want 1", n)
		}
	})
}

func TestNoContentStatusesAreNotChargedAfter(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusNoContent, http.StatusResetContent, http.StatusFound, http.StatusNotModified} {
		e := sellertest.New(t)
		h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
		}), sellertest.PayAfter())
		got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay))
		if got.Status != status {
			t.Errorf("status %d delivered as %d", status, got.Status)
		}
		if n := e.Issuer.ChargeCount(); n != 0 {
			t.Errorf("status %d charged %d times; want 0", status, n)
		}
	}
}

func TestPartialContentIsCharged(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "r.txt", time.Time{}, strings.NewReader("0123456789"))
	}), sellertest.PayAfter())
	got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay), func(r *http.Request) { r.Header.Set("Range", "bytes=0-3") })
	if got.Status != http.StatusPartialContent || got.Body != "0123" || e.Issuer.ChargeCount() != 1 {
		t.Errorf("range request: %d %q, %d charges; want 206 \"0123\" and 1", got.Status, got.Body, e.Issuer.ChargeCount())
	}
}

func TestContentLengthMismatchIsAFailure(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "twenty-three bytes here")
	}), sellertest.PayAfter())
	got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || strings.Contains(got.Body, "twenty-three") {
		t.Errorf("got %d %q; want 500 without the content", got.Status, got.Body)
	}
	if n := e.Issuer.ChargeCount(); n != 0 {
		t.Errorf("charged %d times; want 0", n)
	}
	// A correct Content-Length is delivered and charged.
	h = e.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}), sellertest.PayAfter())
	if got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay)); got.Status != 200 || got.Body != "hello" || e.Issuer.ChargeCount() != 1 {
		t.Errorf("matching Content-Length: %d %q, %d charges", got.Status, got.Body, e.Issuer.ChargeCount())
	}
}

// fixedCharger answers every charge with the same receipt or error.
type fixedCharger struct {
	mu      sync.Mutex
	calls   int
	receipt charge.Receipt
	err     error
}

func (c *fixedCharger) Charge(ctx context.Context, token string, amount kyapay.Amount) (charge.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.receipt, c.err
}

func (c *fixedCharger) ChargeServicePrice(ctx context.Context, token string) (charge.Receipt, error) {
	return c.Charge(ctx, token, kyapay.Amount{})
}

func (c *fixedCharger) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func TestChargedAmountMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		charged string
		deliver bool
	}{{"0", false}, {"0.000001", false}, {"0.02", true}} {
		bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
			var logs bytes.Buffer
			cc := &fixedCharger{receipt: charge.Receipt{AmountCharged: kyapay.MustParseAmount(tc.charged)}}
			var seen []charge.Receipt
			e := sellertest.New(t, func(c *middleware.Config) {
				c.Charger = cc
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				c.OnCharged = func(ctx context.Context, ch *middleware.Charged) { seen = append(seen, ch.Receipt) }
			})
			h := e.Middleware.MustWrap(okHandler, payReq(timing))
			tok := e.Issuer.Mint(kyapay.TypePay)
			got := sellertest.Do(t, h, tok)
			delivered := got.Status == 200 && strings.HasPrefix(got.Body, "ok sub=")
			if delivered != tc.deliver {
				t.Errorf("charged %s of 0.01: got %d %q; want delivered=%v", tc.charged, got.Status, got.Body, tc.deliver)
			}
			if !tc.deliver {
				if got.Status != 502 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeChargeMismatch) || !strings.Contains(got.Body, "not pay again") {
					t.Errorf("charged %s of 0.01: got %d %s %q; want 502 charge_mismatch telling not to pay again", tc.charged, got.Status, got.Header.Get(middleware.CodeHeader), got.Body)
				}
				if len(seen) != 0 {
					t.Errorf("OnCharged ran for a withheld delivery")
				}
			} else if len(seen) != 1 || !seen[0].Mismatch() {
				t.Errorf("OnCharged receipts %+v; want one flagged Mismatch", seen)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "jti="+kyapaytest.TokenID(tok)) {
				t.Errorf("no Error log with the jti:\n%s", logs.String())
			}
		})
	}
}

func TestTransientDeclineIsNotRememberedAsDepletion(t *testing.T) {
	t.Parallel()
	cc := &fixedCharger{err: &charge.Error{Outcome: charge.OutcomeDeclined, Reason: charge.ReasonOther, Message: "network timeout"}}
	e := sellertest.New(t, func(c *middleware.Config) { c.Charger = cc })
	h := e.Middleware.MustWrap(okHandler, payReq(middleware.ChargeBefore))
	tok := e.Issuer.Mint(kyapay.TypePay)
	for i := range 3 {
		if got := sellertest.Do(t, h, tok); got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeChargeDeclined) {
			t.Fatalf("request %d: %d %s", i, got.Status, got.Header.Get(middleware.CodeHeader))
		}
	}
	if n := cc.count(); n != 3 {
		t.Errorf("charge calls = %d; want 3 (a generic decline must not mark the token depleted)", n)
	}
	// Once the charge API recovers, the same token is charged.
	cc.mu.Lock()
	cc.err, cc.receipt = nil, charge.Receipt{AmountCharged: kyapay.MustParseAmount("0.01")}
	cc.mu.Unlock()
	if got := sellertest.Do(t, h, tok); got.Status != 200 {
		t.Errorf("after recovery: %d %q", got.Status, got.Body)
	}
}

func TestBalanceDeclineHealsAfterDeclineMemory(t *testing.T) {
	t.Parallel()
	cc := &fixedCharger{err: &charge.Error{Outcome: charge.OutcomeDeclined, Reason: charge.ReasonInsufficientBalance}}
	e := sellertest.New(t, func(c *middleware.Config) { c.Charger = cc; c.DeclineMemory = 30 * time.Second })
	h := e.Middleware.MustWrap(okHandler, payReq(middleware.ChargeBefore))
	tok := e.Issuer.Mint(kyapay.TypePay)
	for range 2 {
		if got := sellertest.Do(t, h, tok); got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenDepleted) {
			t.Fatalf("got %d %s; want 402 token_depleted", got.Status, got.Header.Get(middleware.CodeHeader))
		}
	}
	if n := cc.count(); n != 1 {
		t.Fatalf("charge calls = %d; want 1 (the second refusal is offline)", n)
	}
	e.Clock.Advance(31 * time.Second)
	sellertest.Do(t, h, tok)
	if n := cc.count(); n != 2 {
		t.Errorf("charge calls after DeclineMemory = %d; want 2 (the remembered decline heals)", n)
	}
}

func TestReportedBalanceBelowPriceIsRememberedUntilExpiry(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, payReq(middleware.ChargeBefore))
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.015"))
	if got := sellertest.Do(t, h, tok); got.Status != 200 {
		t.Fatalf("first: %d", got.Status)
	}
	e.Clock.Advance(10 * time.Minute) // well past DeclineMemory
	if got := sellertest.Do(t, h, tok); got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenDepleted) {
		t.Errorf("second: %d %s; want 402 token_depleted", got.Status, got.Header.Get(middleware.CodeHeader))
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 1 {
		t.Errorf("charge API calls = %d; want 1 (0.005 left is known to be below the price)", n)
	}
}

func TestOnChargedSeesEveryReceipt(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		var mu sync.Mutex
		var got []*middleware.Charged
		e := sellertest.New(t, func(c *middleware.Config) {
			c.OnCharged = func(ctx context.Context, ch *middleware.Charged) {
				mu.Lock()
				defer mu.Unlock()
				if _, ok := kyapay.FromContext(ctx); !ok {
					t.Error("OnCharged context has no claims")
				}
				got = append(got, ch)
			}
		})
		req := payReq(timing)
		mux := http.NewServeMux()
		mux.Handle("GET /x", e.Middleware.MustWrap(okHandler, req))
		tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
		sellertest.Do(t, mux, tok)
		sellertest.Do(t, mux, tok)
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("OnCharged ran %d times; want 2", len(got))
		}
		last := got[1]
		if last.Route != "GET /x" || last.Request == nil || last.Claims.ID != kyapaytest.TokenID(tok) ||
			last.Receipt.AmountCharged.String() != "0.01" || last.Receipt.RemainingBalance.String() != "0.98" || last.Receipt.Mismatch() {
			t.Errorf("OnCharged got %+v, receipt %+v", last, last.Receipt)
		}
	})
}

func TestSignupURLFollowsEnvironment(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience(sellertest.Audience), kyapaytest.WithEnv(kyapay.EnvSandbox))
	defer iss.Close()
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers: []string{iss.Issuer()}, JWKSURLs: map[string]string{iss.Issuer(): iss.JWKSURL()},
		HTTPClient: iss.Client(), Audience: sellertest.Audience, Env: kyapay.EnvSandbox,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, tc := range []struct{ cfg, want string }{
		{"", "https://app-sandbox.skyfire.xyz "},
		{"https://signup.example.com/x", "https://signup.example.com/x "},
	} {
		m, err := middleware.New(middleware.Config{Verifier: v, SignupURL: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		got := sellertest.Do(t, m.MustWrap(okHandler, middleware.AnyToken()), "")
		if !strings.Contains(got.Body, "create an account at "+tc.want) || strings.Contains(got.Body, "https://app.skyfire.xyz") {
			t.Errorf("SignupURL %q: body %q", tc.cfg, got.Body)
		}
	}
	if _, err := middleware.New(middleware.Config{Verifier: v, SignupURL: "https://x\n"}); err == nil {
		t.Error("New accepted a SignupURL with a line break")
	}
}

func TestCustomErrorHandlerSeesPolicyStatus(t *testing.T) {
	t.Parallel()
	var status int
	e := sellertest.New(t, func(c *middleware.Config) {
		c.Policy = middleware.PolicyStatusCodes
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			var ref *middleware.Refusal
			if errors.As(err, &ref) {
				status = ref.Status
			}
			w.WriteHeader(ref.Status)
		}
	})
	got := sellertest.Do(t, e.Middleware.MustWrap(okHandler, middleware.AnyToken()), "not.a.token")
	if status != 401 || got.Status != 401 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenMalformed) {
		t.Errorf("custom handler: Refusal.Status %d, response %d, code %q; want 401, 401, token_malformed", status, got.Status, got.Header.Get(middleware.CodeHeader))
	}
}

func TestTwoTokenHeadersAreAmbiguous(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	tok := e.Issuer.Mint(kyapay.TypeKYA)
	got := sellertest.Do(t, e.Middleware.MustWrap(okHandler, middleware.AnyToken()), tok, func(r *http.Request) {
		r.Header.Add(kyapay.HeaderName, tok)
	})
	if got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenAmbiguous) {
		t.Errorf("got %d %s; want 402 token_ambiguous", got.Status, got.Header.Get(middleware.CodeHeader))
	}
}

func TestGateAuthorizeCommit(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	m := e.Middleware
	rt, err := m.Route(payReq(middleware.ChargeAfter))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := e.Issuer.Mint(kyapay.TypePay)

	g, err := m.Authorize(ctx, rt, middleware.Input{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Pending() || e.Issuer.ChargeCount() != 0 {
		t.Fatalf("ChargeAfter grant: pending %v, %d charges; want true and 0", g.Pending(), e.Issuer.ChargeCount())
	}
	if c, ok := kyapay.FromContext(g.Context()); !ok || c != g.Claims() {
		t.Error("grant context lacks the claims")
	}
	r1, err := g.Commit(ctx)
	if err != nil || r1.AmountCharged.String() != "0.01" {
		t.Fatalf("Commit: %+v, %v", r1, err)
	}
	if r2, err := g.Commit(ctx); err != nil || r2 != r1 || e.Issuer.ChargeCount() != 1 {
		t.Errorf("second Commit: %+v, %v, %d charges; want the same receipt and 1 charge", r2, err, e.Issuer.ChargeCount())
	}

	// Abandoned: nothing is charged, Commit refuses.
	g, err = m.Authorize(ctx, rt, middleware.Input{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	g.Abandon()
	if _, err := g.Commit(ctx); err == nil || e.Issuer.ChargeCount() != 1 {
		t.Errorf("Commit after Abandon: %v, %d charges; want an error and 1", err, e.Issuer.ChargeCount())
	}

	// A done context charges nothing.
	g, _ = m.Authorize(ctx, rt, middleware.Input{Token: tok})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Commit(cctx); !errors.Is(err, context.Canceled) || e.Issuer.ChargeCount() != 1 {
		t.Errorf("Commit with a cancelled context: %v, %d charges", err, e.Issuer.ChargeCount())
	}

	// Refusals are *Refusal with the route's terms.
	_, err = m.Authorize(ctx, rt, middleware.Input{})
	ref, detail := m.Describe(err)
	if ref.Code() != kyapay.CodeTokenMissing || !ref.HasPrice || detail.RequiredAmount != "0.01" || detail.Error != kyapay.CodeTokenMissing ||
		!strings.Contains(detail.Message, "The required amount is 0.01 USD.") {
		t.Errorf("refusal %+v, detail %+v", ref, detail)
	}

	// A route built by another Middleware is refused.
	other := sellertest.New(t)
	if _, err := other.Middleware.Authorize(ctx, rt, middleware.Input{Token: tok}); kyapay.CodeOf(err) != kyapay.CodeInternal {
		t.Errorf("foreign route: %v; want internal_error", err)
	}

	// Before-timing routes charge in Authorize and put the receipt in the context.
	before, _ := m.Route(payReq(middleware.ChargeBefore))
	g, err = m.Authorize(ctx, before, middleware.Input{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if rc, ok := middleware.ReceiptFromContext(g.Context()); !ok || g.Pending() || rc.AmountCharged.String() != "0.01" || e.Issuer.ChargeCount() != 2 {
		t.Errorf("before grant: receipt %+v %v, pending %v, %d charges", rc, ok, g.Pending(), e.Issuer.ChargeCount())
	}
}

func TestContextPrice(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	type tierKey struct{}
	req := middleware.Pay(middleware.ContextPrice(func(ctx context.Context) (kyapay.Amount, error) {
		if _, ok := kyapay.FromContext(ctx); !ok {
			return kyapay.Amount{}, errors.New("no claims")
		}
		if ctx.Value(tierKey{}) == "free" {
			return kyapay.Amount{}, nil
		}
		return kyapay.ParseAmount("0.03")
	}))
	rt, err := e.Middleware.Route(req)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.Issuer.Mint(kyapay.TypePay)
	g, err := e.Middleware.Authorize(context.Background(), rt, middleware.Input{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if rc, _ := g.Receipt(); rc.AmountCharged.String() != "0.03" {
		t.Errorf("charged %v; want 0.03", rc.AmountCharged)
	}
	if _, err := e.Middleware.Authorize(context.WithValue(context.Background(), tierKey{}, "free"), rt, middleware.Input{Token: tok}); err != nil || e.Issuer.ChargeCount() != 1 {
		t.Errorf("free tier: %v, %d charges; want nil and 1", err, e.Issuer.ChargeCount())
	}
	// A PriceFunc without an HTTP request is a server-side error.
	pf, _ := e.Middleware.Route(middleware.Pay(middleware.PriceFunc(func(*http.Request) (kyapay.Amount, error) { return kyapay.ParseAmount("1") })))
	if _, err := e.Middleware.Authorize(context.Background(), pf, middleware.Input{Token: tok}); kyapay.CodeOf(err) != kyapay.CodeInternal {
		t.Errorf("PriceFunc outside HTTP: %v; want internal_error", err)
	}
	if _, err := e.Middleware.Route(middleware.Pay(middleware.ContextPrice(nil))); err == nil {
		t.Error("Route accepted ContextPrice(nil)")
	}
}

func TestRefusalLogsAreClipped(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := sellertest.New(t, func(c *middleware.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	long := "/" + strings.Repeat("a", 10_000)
	h := e.Middleware.MustWrap(okHandler, middleware.AnyToken())
	r := httptest.NewRequest(http.MethodGet, long, nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 2000 {
			t.Errorf("log line of %d bytes", len(line))
		}
	}
	if !strings.Contains(logs.String(), "clipped") {
		t.Errorf("no clipped marker in %q", logs.String())
	}
}

func TestServeNextErrorIsNotCharged(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	rt, err := e.Middleware.Route(sellertest.PayAfter())
	if err != nil {
		t.Fatal(err)
	}
	upstreamDown := errors.New("dial upstream: connection refused")
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set(kyapay.HeaderName, e.Issuer.Mint(kyapay.TypePay))
	w := httptest.NewRecorder()
	got := e.Middleware.Serve(w, r, rt, func(w http.ResponseWriter, r *http.Request) error {
		io.WriteString(w, "partial")
		return upstreamDown
	})
	if got != upstreamDown {
		t.Errorf("Serve returned %v; want the next handler's error", got)
	}
	if w.Body.Len() != 0 || e.Issuer.ChargeCount() != 0 {
		t.Errorf("wrote %q and charged %d times; want nothing and 0", w.Body.String(), e.Issuer.ChargeCount())
	}
	// Without an error the buffered response is charged and released.
	w = httptest.NewRecorder()
	if err := e.Middleware.Serve(w, r, rt, func(w http.ResponseWriter, r *http.Request) error {
		io.WriteString(w, "content")
		return nil
	}); err != nil || w.Body.String() != "content" || e.Issuer.ChargeCount() != 1 {
		t.Errorf("Serve: %v, %q, %d charges", err, w.Body.String(), e.Issuer.ChargeCount())
	}
}

func TestTransientPaymentErrorFromTheChargeAPI(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okHandler, payReq(middleware.ChargeBefore))
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
	e.Issuer.InjectFault(kyapaytest.TransientPaymentError(1))
	got := sellertest.Do(t, h, tok)
	if got.Status != 503 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeChargeUnavailable) || got.Header.Get("Retry-After") == "" {
		t.Fatalf("transient 402: %d %s %q; want 503 charge_unavailable with Retry-After", got.Status, got.Header.Get(middleware.CodeHeader), got.Body)
	}
	// The token was not marked depleted: the next request is charged.
	if got := sellertest.Do(t, h, tok); got.Status != 200 || e.Issuer.ChargeCount() != 1 {
		t.Errorf("after a transient 402: %d, %d charges; want 200 and 1", got.Status, e.Issuer.ChargeCount())
	}
}

func TestChargeAPIReportsAnotherAmount(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		e := sellertest.New(t)
		h := e.Middleware.MustWrap(okHandler, payReq(timing))
		e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, AmountCharged: "0.000001", Times: 1})
		got := sellertest.Do(t, h, e.Issuer.Mint(kyapay.TypePay))
		if got.Status != 502 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeChargeMismatch) || strings.Contains(got.Body, "ok sub=") {
			t.Errorf("charged 0.000001 of 0.01: %d %s %q; want 502 charge_mismatch without the content", got.Status, got.Header.Get(middleware.CodeHeader), got.Body)
		}
	})
}

func TestAPIKeyRejectedIsNeverTheBuyersFault(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := sellertest.New(t, func(c *middleware.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	e.Issuer.SetAPIKeys("some-other-key")
	got := sellertest.Do(t, e.Middleware.MustWrap(okHandler, payReq(middleware.ChargeBefore)), e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 503 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeChargeUnavailable) {
		t.Errorf("rejected API key: %d %s; want 503 charge_unavailable", got.Status, got.Header.Get(middleware.CodeHeader))
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "API key") {
		t.Errorf("no Error log naming the API key:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), e.Issuer.APIKeys()[0]) {
		t.Error("a key reached the log")
	}
}

func TestRateLimitRetryAfterIsPassedOn(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 429, Header: http.Header{"Retry-After": {"120"}}, Times: 1})
	got := sellertest.Do(t, e.Middleware.MustWrap(okHandler, payReq(middleware.ChargeBefore)), e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 503 || got.Header.Get("Retry-After") != "120" {
		t.Errorf("429 with Retry-After 120: %d Retry-After %q; want 503 and 120", got.Status, got.Header.Get("Retry-After"))
	}
}

func TestGateAccessors(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t, func(c *middleware.Config) { c.Header = "kyapay-token"; c.SignupURL = "https://signup.example" })
	m := e.Middleware
	if m.Header() != "kyapay-token" || m.SignupURL() != "https://signup.example" {
		t.Errorf("Header %q, SignupURL %q", m.Header(), m.SignupURL())
	}
	if !middleware.PriceFunc(func(*http.Request) (kyapay.Amount, error) { return kyapay.Amount{}, nil }).NeedsRequest() ||
		middleware.FixedPrice("1").NeedsRequest() || middleware.ContextPrice(nil).NeedsRequest() {
		t.Error("NeedsRequest is true only for PriceFunc")
	}
	rt, _ := m.Route(payReq(middleware.ChargeBefore))
	g, err := m.Authorize(context.Background(), rt, middleware.Input{Token: e.Issuer.Mint(kyapay.TypePay)})
	if err != nil {
		t.Fatal(err)
	}
	type k struct{}
	other, cancel := context.WithCancel(context.WithValue(context.Background(), k{}, "v"))
	defer cancel()
	ctx := g.ContextOn(other)
	c, ok1 := kyapay.FromContext(ctx)
	rc, ok2 := middleware.ReceiptFromContext(ctx)
	if !ok1 || !ok2 || c != g.Claims() || rc.AmountCharged.String() != "0.01" || ctx.Value(k{}) != "v" {
		t.Errorf("ContextOn: claims %v %v, receipt %+v %v, own value %v", c, ok1, rc, ok2, ctx.Value(k{}))
	}
	cancel()
	if ctx.Err() == nil {
		t.Error("ContextOn does not follow the other context's cancellation")
	}
}
