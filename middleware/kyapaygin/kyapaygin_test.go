package kyapaygin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaygin"
)

// report answers 200 with the buyer's sub and the receipt, if any.
func report(c *gin.Context) {
	claims, ok := kyapaygin.Claims(c)
	if !ok {
		c.String(http.StatusInternalServerError, "no claims")
		return
	}
	body := "ok sub=" + claims.Subject
	if rc, ok := kyapaygin.Receipt(c); ok {
		body += " charged=" + rc.AmountCharged.String() + " remaining=" + rc.RemainingBalance.String()
	}
	c.String(http.StatusOK, body)
}

func TestIdentityRouteLaterHandlersSeeClaims(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	r := gin.New()
	var sawInMiddle string
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, middleware.Identity("email")),
		func(c *gin.Context) {
			// A later middleware sees the claims both ways.
			claims, ok := kyapay.FromContext(c.Request.Context())
			if ok {
				sawInMiddle = claims.Subject
			}
			c.Next()
		}, report)
	got := sellertest.Do(t, r, e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Subject("buyer-7")))
	if got.Status != 200 || got.Body != "ok sub=buyer-7" {
		t.Fatalf("got %d %q; want 200 %q", got.Status, got.Body, "ok sub=buyer-7")
	}
	if sawInMiddle != "buyer-7" {
		t.Errorf("later middleware saw sub %q; want buyer-7", sawInMiddle)
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 0 {
		t.Errorf("charge calls = %d on a free route; want 0", n)
	}
}

func TestRefusedRequestRunsNoLaterHandler(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	tests := []struct {
		name  string
		req   middleware.Requirement
		token string
		body  string
	}{
		{"missing token", middleware.AnyToken(), "", sellertest.SeedMissing},
		{"garbage token", middleware.AnyToken(), "not.a.token", sellertest.SeedInvalid("Token is not a well-formed compact JWS")},
		{"kya on paid route", middleware.Pay(middleware.FixedPrice("0.01")), e.Issuer.Mint(kyapay.TypeKYA), sellertest.SeedPay},
		{"kya on charge-after route", sellertest.PayAfter(), e.Issuer.Mint(kyapay.TypeKYA), sellertest.SeedPay},
		{"amount below price", sellertest.PayAfter(), e.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("0.005")), sellertest.SeedDepleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var later counter
			var aborted bool
			r := gin.New()
			r.Use(func(c *gin.Context) {
				c.Next()
				aborted = c.IsAborted()
			})
			r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, tt.req), later.handler(), report)
			got := sellertest.Do(t, r, tt.token)
			if got.Status != http.StatusPaymentRequired || got.Body != tt.body {
				t.Fatalf("got %d %q; want 402 %q", got.Status, got.Body, tt.body)
			}
			if later.count() != 0 {
				t.Errorf("later handler ran %d times on a refused request", later.count())
			}
			if !aborted {
				t.Error("c.IsAborted() = false after a refusal; want true")
			}
			if cc := got.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
		})
	}
	if n := e.Issuer.ChargeCount(); n != 0 {
		t.Errorf("ledger = %d charges; want 0", n)
	}
}

func TestChargeBeforeReceiptVisible(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	var later counter
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, middleware.Pay(middleware.FixedPrice("0.01"))), later.handler(), report)
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Subject("buyer-1"), kyapaytest.Balance("0.05"))
	got := sellertest.Do(t, r, tok)
	if want := "ok sub=buyer-1 charged=0.01 remaining=0.04"; got.Status != 200 || got.Body != want {
		t.Fatalf("got %d %q; want 200 %q", got.Status, got.Body, want)
	}
	if later.count() != 1 || e.Issuer.ChargeCount() != 1 {
		t.Errorf("later handler ran %d times, ledger %d charges; want 1 and 1", later.count(), e.Issuer.ChargeCount())
	}
	if bal, _ := e.Issuer.Balance(kyapaytest.TokenID(tok)); bal.String() != "0.04" {
		t.Errorf("balance = %v; want 0.04", bal)
	}
}

// stream writes a header and three parts, flushing through every path a
// gin handler has: c.Writer.Flush, http.ResponseController and c.Stream.
func stream(c *gin.Context) {
	c.Header("X-Secret-Header", "leak")
	c.Writer.WriteString("part one;")
	c.Writer.Flush()
	_ = http.NewResponseController(c.Writer).Flush()
	i := 0
	c.Stream(func(w io.Writer) bool {
		i++
		fmt.Fprintf(w, "part %d;", i+1)
		return i < 2
	})
}

func TestChargeAfterHandlerFailureIsNotCharged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		handlers []gin.HandlerFunc
		status   int
		body     string
	}{
		{"AbortWithStatus then stream", []gin.HandlerFunc{func(c *gin.Context) {
			c.AbortWithStatus(http.StatusInternalServerError)
			stream(c)
		}}, 500, "part one;part 2;part 3;"},
		{"String 500 then flush and stream", []gin.HandlerFunc{func(c *gin.Context) {
			c.String(http.StatusInternalServerError, "failed;")
			stream(c)
		}}, 500, "failed;part one;part 2;part 3;"},
		{"status without body", []gin.HandlerFunc{func(c *gin.Context) {
			c.Header("X-Secret-Header", "leak")
			c.Status(http.StatusServiceUnavailable)
		}}, 503, ""},
		{"later middleware aborts with JSON", []gin.HandlerFunc{
			func(c *gin.Context) { c.AbortWithStatusJSON(http.StatusBadGateway, gin.H{"error": "upstream"}) },
			func(c *gin.Context) { panic("handler after an abort ran") },
		}, 502, `{"error":"upstream"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := sellertest.New(t)
			r := gin.New()
			r.GET("/x", append([]gin.HandlerFunc{kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter())}, tt.handlers...)...)
			got := sellertest.Do(t, r, e.Issuer.Mint(kyapay.TypePay))
			if got.Status != tt.status || got.Body != tt.body {
				t.Fatalf("got %d %q; want %d %q", got.Status, got.Body, tt.status, tt.body)
			}
			if e.Issuer.ChargeCount() != 0 || e.Issuer.Requests(kyapaytest.EndpointCharge) != 0 {
				t.Errorf("ledger %d charges, %d charge calls for a failed handler; want 0 and 0",
					e.Issuer.ChargeCount(), e.Issuer.Requests(kyapaytest.EndpointCharge))
			}
		})
	}
}

func TestChargeAfterDeclinedLeaksNothing(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	var ran counter
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), ran.handler(), stream)

	for name, tok := range map[string]string{
		"zero balance":  e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0")),
		"already spent": e.SpentElsewhere(t),
	} {
		before := ran.count()
		got := sellertest.Do(t, r, tok)
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
	if n := e.Issuer.ChargeCount(); n != 1 {
		t.Errorf("ledger = %d charges; want 1 (the spending elsewhere)", n)
	}
}

func TestChargeAfterSuccessDeliversAfterCharge(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	var outerStatus int
	var outerWriter gin.ResponseWriter
	r := gin.New()
	r.Use(func(c *gin.Context) {
		w := c.Writer
		c.Next()
		outerStatus = c.Writer.Status()
		if c.Writer != w {
			outerWriter = c.Writer
		}
	})
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), func(c *gin.Context) {
		if _, ok := kyapaygin.Receipt(c); ok {
			t.Error("receipt present before a charge-after charge")
		}
		if _, ok := kyapaygin.Claims(c); !ok {
			t.Error("no claims in a charge-after handler")
		}
		c.Status(http.StatusCreated)
		stream(c)
	})
	tok := e.Issuer.Mint(kyapay.TypePay)
	got := sellertest.Do(t, r, tok)
	if want := "part one;part 2;part 3;"; got.Status != 201 || got.Body != want {
		t.Fatalf("got %d %q; want 201 %q", got.Status, got.Body, want)
	}
	if h := got.Header.Get("X-Secret-Header"); h != "leak" {
		t.Errorf("X-Secret-Header = %q; want the handler's header after the charge", h)
	}
	if e.Issuer.ChargeCount() != 1 {
		t.Errorf("ledger = %d charges; want 1", e.Issuer.ChargeCount())
	}
	if outerStatus != 201 || outerWriter != nil {
		t.Errorf("outer middleware saw status %d, writer replaced by %T; want 201 and gin's own writer", outerStatus, outerWriter)
	}
}

// TestChargeAfterStatusIsFixedByFirstWrite pins the documented contract:
// as with gin on a real connection, a status set after the body started is
// ignored, so the response counts as a success and is charged.
// TestChargeAfterLateFailureIsNotCharged: a handler that streams and then
// aborts with 500 delivers the failure, none of the streamed content, and
// is not charged (nothing had left the buffer).
func TestChargeAfterLateFailureIsNotCharged(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), func(c *gin.Context) {
		stream(c)
		c.AbortWithStatus(http.StatusInternalServerError)
	})
	got := sellertest.Do(t, r, e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || strings.Contains(got.Body, "part") || e.Issuer.ChargeCount() != 0 {
		t.Fatalf("got %d %q, ledger %d; want 500 without the streamed parts and no charge", got.Status, got.Body, e.Issuer.ChargeCount())
	}
}

func TestChargeAfterNothingLeaksOverRealConnection(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	// The handler has written and flushed before the charge is sent; when
	// the fake charge API sees the request, not one byte may have reached
	// the client's connection.
	var written atomic.Int64
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Latency: time.Nanosecond, Times: 1,
		OnApply: func() {
			if n := written.Load(); n != 0 {
				t.Errorf("%d bytes reached the client before the charge", n)
			}
		}})
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), stream)
	srv := sellertest.NewCountingServer(r, &written)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("skyfire-pay-id", e.Issuer.Mint(kyapay.TypePay))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := "part one;part 2;part 3;"; resp.StatusCode != 200 || string(b) != want || e.Issuer.ChargeCount() != 1 {
		t.Errorf("got %d %q, ledger %d; want 200 %q, 1 charge", resp.StatusCode, b, e.Issuer.ChargeCount(), want)
	}
}

func TestChargeAfterWriterKeepsConnectionAway(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), func(c *gin.Context) {
		w := c.Writer
		if w.Status() != 200 || w.Written() || w.Size() != -1 {
			t.Errorf("fresh writer: status %d, written %v, size %d; want 200, false, -1", w.Status(), w.Written(), w.Size())
		}
		if _, _, err := w.Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Hijack error = %v; want http.ErrNotSupported", err)
		}
		if _, _, err := http.NewResponseController(w).Hijack(); err == nil {
			t.Error("ResponseController.Hijack reached the connection")
		}
		if p := w.Pusher(); p != nil {
			t.Errorf("Pusher = %T; want nil", p)
		}
		select {
		case <-w.CloseNotify():
			t.Error("CloseNotify fired while the client is connected")
		default:
		}
		c.Status(http.StatusAccepted)
		n, _ := w.WriteString("abc")
		if n != 3 || w.Status() != 202 || !w.Written() || w.Size() != 3 {
			t.Errorf("after WriteString: n %d, status %d, written %v, size %d; want 3, 202, true, 3", n, w.Status(), w.Written(), w.Size())
		}
		w.WriteHeader(http.StatusCreated) // a late success status is ignored once written, as in gin
		if w.Status() != 202 {
			t.Errorf("status after a late WriteHeader = %d; want 202", w.Status())
		}
	})
	got := sellertest.Do(t, r, e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 202 || got.Body != "abc" {
		t.Fatalf("got %d %q; want 202 %q", got.Status, got.Body, "abc")
	}
}

func TestChargeAfterClientGone(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	var gone bool
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), func(c *gin.Context) {
		c.Writer.WriteString("content")
		cancel() // the client hangs up while the handler streams
		gone = c.Stream(func(io.Writer) bool {
			runtime.Gosched()
			return true // until CloseNotify reports the client gone
		})
	})
	req := httptest.NewRequest(http.MethodGet, "/x", nil).WithContext(ctx)
	req.Header.Set("skyfire-pay-id", e.Issuer.Mint(kyapay.TypePay))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if !gone {
		t.Error("c.Stream did not report the client gone")
	}
	if e.Issuer.ChargeCount() != 0 || strings.Contains(w.Body.String(), "content") {
		t.Errorf("ledger %d, body %q; want no charge and no content for a client that left", e.Issuer.ChargeCount(), w.Body)
	}
}

func TestChargeAfterPanicIsRecoveredUncharged(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, _ any) {
		c.AbortWithStatus(http.StatusInternalServerError)
	}))
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), func(c *gin.Context) {
		c.Header("X-Secret-Header", "leak")
		c.Writer.WriteString("secret")
		c.Writer.Flush()
		panic("boom")
	})
	got := sellertest.Do(t, r, e.Issuer.Mint(kyapay.TypePay))
	if got.Status != 500 || strings.Contains(got.Body, "secret") || got.Header.Get("X-Secret-Header") != "" {
		t.Fatalf("got %d %q %v; want a bare 500", got.Status, got.Body, got.Header)
	}
	if e.Issuer.ChargeCount() != 0 {
		t.Errorf("ledger = %d charges; want 0", e.Issuer.ChargeCount())
	}
}

func TestParallelChargeAfterAgainstExactBalance(t *testing.T) {
	t.Parallel()
	const n, m = 30, 7
	e := sellertest.New(t)
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, sellertest.PayAfter()), stream)
	srv := httptest.NewServer(r)
	defer srv.Close()
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.07"))
	ok, refused := sellertest.ConcurrentGets(t, srv.Client(), srv.URL+"/x", tok, n, "part one;part 2;part 3;")
	if ok != m || refused != n-m || e.Issuer.ChargeCount() != m {
		t.Errorf("successes %d, refusals %d, ledger %d; want %d, %d, %d", ok, refused, e.Issuer.ChargeCount(), m, n-m, m)
	}
}

func TestInvalidRequirement(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	if _, err := kyapaygin.Middleware(e.Middleware, middleware.Pay(middleware.FixedPrice("0"))); err == nil {
		t.Error("Middleware accepted a zero fixed price")
	}
	if _, err := kyapaygin.Middleware(nil, middleware.AnyToken()); err == nil {
		t.Error("Middleware accepted a nil *middleware.Middleware")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustMiddleware did not panic on an unknown identity field")
		}
	}()
	kyapaygin.MustMiddleware(e.Middleware, middleware.Identity("nationality"))
}

func TestAccessorsWithoutMiddleware(t *testing.T) {
	t.Parallel()
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	if _, ok := kyapaygin.Claims(c); ok {
		t.Error("Claims ok on a context without a request")
	}
	c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
	if _, ok := kyapaygin.Claims(c); ok {
		t.Error("Claims ok without the middleware")
	}
	if _, ok := kyapaygin.Receipt(c); ok {
		t.Error("Receipt ok without the middleware")
	}
}

func TestFreeRouteCanHijack(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	r := gin.New()
	r.GET("/x", kyapaygin.MustMiddleware(e.Middleware, middleware.Identity()), func(c *gin.Context) {
		conn, bw, err := c.Writer.Hijack()
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		bw.Flush()
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("skyfire-pay-id", e.Issuer.Mint(kyapay.TypeKYA))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "hijacked" {
		t.Errorf("got %d %q; want the hijacked connection's answer", resp.StatusCode, b)
	}
}
