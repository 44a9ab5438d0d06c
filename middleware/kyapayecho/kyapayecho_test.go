package kyapayecho_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayecho"
)

// newEcho returns an echo instance that logs nowhere.
func newEcho() *echo.Echo {
	e := echo.New()
	e.Logger.SetOutput(io.Discard)
	return e
}

// report answers 200 with the buyer's sub and the receipt, if any.
func report(c echo.Context) error {
	claims, ok := kyapayecho.Claims(c)
	if !ok {
		return echo.NewHTTPError(http.StatusInternalServerError, "no claims")
	}
	body := "ok sub=" + claims.Subject
	if rc, ok := kyapayecho.Receipt(c); ok {
		body += " charged=" + rc.AmountCharged.String() + " remaining=" + rc.RemainingBalance.String()
	}
	return c.String(http.StatusOK, body)
}

// errorsSeen records the error each request's chain returned to echo.
type errorsSeen struct {
	mu   sync.Mutex
	errs []error
}

func (s *errorsSeen) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
		return err
	}
}

func (s *errorsSeen) last() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return errors.New("no request seen")
	}
	return s.errs[len(s.errs)-1]
}

func TestIdentityRouteLaterHandlersSeeClaims(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	e := newEcho()
	var sawInMiddle string
	later := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if claims, ok := kyapay.FromContext(c.Request().Context()); ok {
				sawInMiddle = claims.Subject
			}
			return next(c)
		}
	}
	e.GET("/x", report, kyapayecho.MustMiddleware(env.Middleware, middleware.Identity("email")), later)
	got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Subject("buyer-7")))
	if got.Status != 200 || got.Body != "ok sub=buyer-7" {
		t.Fatalf("got %d %q; want 200 %q", got.Status, got.Body, "ok sub=buyer-7")
	}
	if sawInMiddle != "buyer-7" {
		t.Errorf("later middleware saw sub %q; want buyer-7", sawInMiddle)
	}
	if n := env.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
		t.Errorf("charge calls = %d on a free route; want 0", n)
	}
}

func TestRefusedRequestRunsNoLaterHandler(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	tests := []struct {
		name  string
		req   middleware.Requirement
		token string
		body  string
	}{
		{"missing token", middleware.AnyToken(), "", sellertest.SeedMissing},
		{"garbage token", middleware.AnyToken(), "not.a.token", sellertest.SeedInvalid("Token is not a well-formed compact JWS")},
		{"kya on paid route", middleware.Pay(middleware.FixedPrice("0.01")), env.Issuer.Mint(kyapay.TypeKYA), sellertest.SeedPay},
		{"kya on charge-after route", sellertest.PayAfter(), env.Issuer.Mint(kyapay.TypeKYA), sellertest.SeedPay},
		{"amount below price", sellertest.PayAfter(), env.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("0.005")), sellertest.SeedDepleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var later counter
			var seen errorsSeen
			e := newEcho()
			e.Use(seen.middleware)
			e.GET("/x", report, kyapayecho.MustMiddleware(env.Middleware, tt.req), later.middleware())
			got := sellertest.Do(t, e, tt.token)
			if got.Status != http.StatusPaymentRequired || got.Body != tt.body {
				t.Fatalf("got %d %q; want 402 %q", got.Status, got.Body, tt.body)
			}
			if later.count() != 0 {
				t.Errorf("later handler ran %d times on a refused request", later.count())
			}
			if err := seen.last(); err != nil {
				t.Errorf("chain returned %v; want nil (the refusal is answered)", err)
			}
			if cc := got.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
		})
	}
	if n := env.Issuer.ChargeCount(); n != 0 {
		t.Errorf("ledger = %d charges; want 0", n)
	}
}

func TestChargeBeforeReceiptVisible(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	var later counter
	e := newEcho()
	e.GET("/x", report, kyapayecho.MustMiddleware(env.Middleware, middleware.Pay(middleware.FixedPrice("0.01"))), later.middleware())
	tok := env.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("buyer-1"), kyapaytest.Balance("0.05"))
	got := sellertest.Do(t, e, tok)
	if want := "ok sub=buyer-1 charged=0.01 remaining=0.04"; got.Status != 200 || got.Body != want {
		t.Fatalf("got %d %q; want 200 %q", got.Status, got.Body, want)
	}
	if later.count() != 1 || env.Issuer.ChargeCount() != 1 {
		t.Errorf("later handler ran %d times, ledger %d charges; want 1 and 1", later.count(), env.Issuer.ChargeCount())
	}
}

func TestChargeBeforeErrorGoesToEcho(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	var seen errorsSeen
	e := newEcho()
	e.Use(seen.middleware)
	e.GET("/x", func(echo.Context) error {
		return echo.NewHTTPError(http.StatusConflict, "conflict")
	}, kyapayecho.MustMiddleware(env.Middleware, middleware.Pay(middleware.FixedPrice("0.01"))))
	got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypePay))
	if got.Status != http.StatusConflict || got.Body != `{"message":"conflict"}`+"\n" {
		t.Fatalf("got %d %q; want 409 with echo's JSON error", got.Status, got.Body)
	}
	var he *echo.HTTPError
	if err := seen.last(); !errors.As(err, &he) || he.Code != http.StatusConflict {
		t.Errorf("chain returned %v; want the handler's *echo.HTTPError", err)
	}
	if env.Issuer.ChargeCount() != 1 {
		t.Errorf("ledger = %d charges; want 1 (charged before the handler)", env.Issuer.ChargeCount())
	}
}

// stream writes a header and three parts, flushing after each through the
// paths an echo handler has: Response().Flush and http.ResponseController.
func stream(c echo.Context) {
	w := c.Response()
	w.Header().Set("X-Secret-Header", "leak")
	io.WriteString(w, "part one;")
	w.Flush()
	_ = http.NewResponseController(w).Flush()
	for i := 2; i <= 3; i++ {
		fmt.Fprintf(w, "part %d;", i)
		w.Flush()
	}
}

func TestChargeAfterHandlerFailureIsNotCharged(t *testing.T) {
	t.Parallel()
	teapot := func(err error, c echo.Context) {
		if !c.Response().Committed {
			c.String(http.StatusTeapot, "custom: "+err.Error())
		}
	}
	tests := []struct {
		name         string
		errorHandler echo.HTTPErrorHandler
		handler      echo.HandlerFunc
		status       int
		body         string
	}{
		{"returns HTTPError", nil, func(echo.Context) error {
			return echo.NewHTTPError(http.StatusInternalServerError, "boom")
		}, 500, `{"message":"boom"}` + "\n"},
		{"returns plain error", nil, func(echo.Context) error {
			return errors.New("db down")
		}, 500, `{"message":"Internal Server Error"}` + "\n"},
		{"custom error handler", teapot, func(echo.Context) error {
			return errors.New("db down")
		}, 418, "custom: db down"},
		{"error status, writes, flushes, returns error", nil, func(c echo.Context) error {
			c.Response().WriteHeader(http.StatusInternalServerError)
			stream(c)
			return errors.New("failed midway")
		}, 500, "part one;part 2;part 3;"},
		{"c.Stream with an error status", nil, func(c echo.Context) error {
			return c.Stream(http.StatusBadGateway, echo.MIMETextPlain, strings.NewReader("upstream failed"))
		}, 502, "upstream failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := sellertest.New(t)
			var handled atomic.Int32
			var seen errorsSeen
			e := newEcho()
			errorHandler := e.DefaultHTTPErrorHandler
			if tt.errorHandler != nil {
				errorHandler = tt.errorHandler
			}
			e.HTTPErrorHandler = func(err error, c echo.Context) {
				handled.Add(1)
				errorHandler(err, c)
			}
			e.Use(seen.middleware)
			e.GET("/x", tt.handler, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
			got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypePay))
			if got.Status != tt.status || got.Body != tt.body {
				t.Fatalf("got %d %q; want %d %q", got.Status, got.Body, tt.status, tt.body)
			}
			if env.Issuer.ChargeCount() != 0 || env.Issuer.Requests(kyapaytest.EndpointCharge) != 0 {
				t.Errorf("ledger %d charges, %d charge calls for a failed handler; want 0 and 0",
					env.Issuer.ChargeCount(), env.Issuer.Requests(kyapaytest.EndpointCharge))
			}
			if err := seen.last(); err != nil {
				t.Errorf("chain returned %v; want nil (the error was answered inside the buffer)", err)
			}
			if n := handled.Load(); n > 1 {
				t.Errorf("HTTPErrorHandler called %d times; want at most 1", n)
			}
		})
	}
}

func TestChargeAfterDeclinedLeaksNothing(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	var ran counter
	e := newEcho()
	e.GET("/x", func(c echo.Context) error { stream(c); return nil },
		kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()), ran.middleware())
	for name, tok := range map[string]string{
		"zero balance":  env.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0")),
		"already spent": env.SpentElsewhere(t),
	} {
		before := ran.count()
		got := sellertest.Do(t, e, tok)
		if got.Status != http.StatusPaymentRequired || got.Body != sellertest.SeedDepleted {
			t.Errorf("%s: got %d %q; want 402 %q", name, got.Status, got.Body, sellertest.SeedDepleted)
		}
		if h := got.Header.Get("X-Secret-Header"); h != "" {
			t.Errorf("%s: handler header leaked: X-Secret-Header = %q", name, h)
		}
		if ran.count() != before+1 {
			t.Errorf("%s: handler ran %d times; want 1 (charge-after runs it first)", name, ran.count()-before)
		}
	}
	if n := env.Issuer.ChargeCount(); n != 1 {
		t.Errorf("ledger = %d charges; want 1 (the spending elsewhere)", n)
	}
}

func TestChargeAfterSuccessDeliversAfterCharge(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	var outer struct {
		swapped   bool
		status    int
		committed bool
		err       error
	}
	e := newEcho()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			resp := c.Response()
			outer.err = next(c)
			outer.swapped = c.Response() != resp
			outer.status, outer.committed = resp.Status, resp.Committed
			return outer.err
		}
	})
	e.GET("/x", func(c echo.Context) error {
		if _, ok := kyapayecho.Receipt(c); ok {
			t.Error("receipt present before a charge-after charge")
		}
		if _, ok := kyapayecho.Claims(c); !ok {
			t.Error("no claims in a charge-after handler")
		}
		c.Response().WriteHeader(http.StatusCreated)
		stream(c)
		return nil
	}, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypePay))
	if want := "part one;part 2;part 3;"; got.Status != 201 || got.Body != want {
		t.Fatalf("got %d %q; want 201 %q", got.Status, got.Body, want)
	}
	if h := got.Header.Get("X-Secret-Header"); h != "leak" {
		t.Errorf("X-Secret-Header = %q; want the handler's header after the charge", h)
	}
	if env.Issuer.ChargeCount() != 1 {
		t.Errorf("ledger = %d charges; want 1", env.Issuer.ChargeCount())
	}
	if outer.swapped || outer.status != 201 || !outer.committed || outer.err != nil {
		t.Errorf("outer middleware saw swapped %v, status %d, committed %v, err %v; want echo's own response, 201, true, nil",
			outer.swapped, outer.status, outer.committed, outer.err)
	}
}

// TestChargeAfterStatusIsFixedByFirstWrite pins the documented contract:
// echo's error handler leaves a committed response alone, so an error
// returned after the handler has written is not rendered and the response
// counts as a success and is charged.
// TestChargeAfterLateFailureIsNotCharged: a handler that streams and then
// returns an error delivers the rendered error, none of the streamed
// content, and is not charged (nothing had left the buffer).
func TestChargeAfterLateFailureIsNotCharged(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	e := newEcho()
	e.GET("/x", func(c echo.Context) error {
		stream(c)
		return echo.NewHTTPError(http.StatusInternalServerError, "failed midway")
	}, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || !strings.Contains(got.Body, "failed midway") || strings.Contains(got.Body, "part") || env.Issuer.ChargeCount() != 0 {
		t.Fatalf("got %d %q, ledger %d; want 500 with the error, without the streamed parts, and no charge", got.Status, got.Body, env.Issuer.ChargeCount())
	}
}

func TestChargeAfterNothingLeaksOverRealConnection(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	// The handler has written and flushed before the charge is sent; when
	// the fake charge API sees the request, not one byte may have reached
	// the client's connection.
	var written atomic.Int64
	env.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Latency: time.Nanosecond, Times: 1,
		OnApply: func() {
			if n := written.Load(); n != 0 {
				t.Errorf("%d bytes reached the client before the charge", n)
			}
		}})
	e := newEcho()
	e.GET("/x", func(c echo.Context) error { stream(c); return nil }, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	srv := sellertest.NewCountingServer(e, &written)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("skyfire-pay-id", env.Issuer.Mint(kyapay.TypePay))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := "part one;part 2;part 3;"; resp.StatusCode != 200 || string(b) != want || env.Issuer.ChargeCount() != 1 {
		t.Errorf("got %d %q, ledger %d; want 200 %q, 1 charge", resp.StatusCode, b, env.Issuer.ChargeCount(), want)
	}
}

func TestChargeAfterCannotHijack(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	e := newEcho()
	e.GET("/x", func(c echo.Context) error {
		if _, _, err := c.Response().Hijack(); err == nil {
			t.Error("Response().Hijack reached the connection")
		}
		return c.String(http.StatusOK, "fine")
	}, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	if got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypePay)); got.Status != 200 || got.Body != "fine" {
		t.Fatalf("got %d %q; want 200 %q", got.Status, got.Body, "fine")
	}
}

func TestFreeRouteCanHijack(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	e := newEcho()
	e.GET("/x", func(c echo.Context) error {
		conn, bw, err := c.Response().Hijack()
		if err != nil {
			return err
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		return bw.Flush()
	}, kyapayecho.MustMiddleware(env.Middleware, middleware.Identity()))
	srv := httptest.NewServer(e)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("skyfire-pay-id", env.Issuer.Mint(kyapay.TypeKYA))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "hijacked" {
		t.Errorf("got %d %q; want the hijacked connection's answer", resp.StatusCode, b)
	}
}

func TestChargeAfterClientGone(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := newEcho()
	e.GET("/x", func(c echo.Context) error {
		io.WriteString(c.Response(), "content")
		cancel() // the client hangs up while the handler works
		return nil
	}, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	req := httptest.NewRequest(http.MethodGet, "/x", nil).WithContext(ctx)
	req.Header.Set("skyfire-pay-id", env.Issuer.Mint(kyapay.TypePay))
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	if env.Issuer.ChargeCount() != 0 || strings.Contains(w.Body.String(), "content") {
		t.Errorf("ledger %d, body %q; want no charge and no content for a client that left", env.Issuer.ChargeCount(), w.Body)
	}
}

func TestChargeAfterPanicIsRecoveredUncharged(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	e := newEcho()
	e.Use(echomw.RecoverWithConfig(echomw.RecoverConfig{DisablePrintStack: true, DisableErrorHandler: false}))
	e.GET("/x", func(c echo.Context) error {
		c.Response().Header().Set("X-Secret-Header", "leak")
		io.WriteString(c.Response(), "secret")
		c.Response().Flush()
		panic("boom")
	}, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	got := sellertest.Do(t, e, env.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || strings.Contains(got.Body, "secret") || got.Header.Get("X-Secret-Header") != "" {
		t.Fatalf("got %d %q %v; want echo's bare 500", got.Status, got.Body, got.Header)
	}
	if env.Issuer.ChargeCount() != 0 {
		t.Errorf("ledger = %d charges; want 0", env.Issuer.ChargeCount())
	}
}

func TestParallelChargeAfterAgainstExactBalance(t *testing.T) {
	t.Parallel()
	const n, m = 30, 7
	env := sellertest.New(t)
	e := newEcho()
	e.GET("/x", func(c echo.Context) error { stream(c); return nil }, kyapayecho.MustMiddleware(env.Middleware, sellertest.PayAfter()))
	srv := httptest.NewServer(e)
	defer srv.Close()
	tok := env.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.07"))
	ok, refused := sellertest.ConcurrentGets(t, srv.Client(), srv.URL+"/x", tok, n, "part one;part 2;part 3;")
	if ok != m || refused != n-m || env.Issuer.ChargeCount() != m {
		t.Errorf("successes %d, refusals %d, ledger %d; want %d, %d, %d", ok, refused, env.Issuer.ChargeCount(), m, n-m, m)
	}
}

func TestInvalidRequirement(t *testing.T) {
	t.Parallel()
	env := sellertest.New(t)
	if _, err := kyapayecho.Middleware(env.Middleware, middleware.Pay(middleware.FixedPrice("0"))); err == nil {
		t.Error("Middleware accepted a zero fixed price")
	}
	if _, err := kyapayecho.Middleware(nil, middleware.AnyToken()); err == nil {
		t.Error("Middleware accepted a nil *middleware.Middleware")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustMiddleware did not panic on an unknown identity field")
		}
	}()
	kyapayecho.MustMiddleware(env.Middleware, middleware.Identity("nationality"))
}

func TestAccessorsWithoutMiddleware(t *testing.T) {
	t.Parallel()
	c := newEcho().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	if _, ok := kyapayecho.Claims(c); ok {
		t.Error("Claims ok without the middleware")
	}
	if _, ok := kyapayecho.Receipt(c); ok {
		t.Error("Receipt ok without the middleware")
	}
	if _, ok := kyapayecho.Claims(nil); ok {
		t.Error("Claims ok on a nil context")
	}
}
