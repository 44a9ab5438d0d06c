package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/storetest"
)

// counted is a handler that numbers its runs in its body.
type counted struct{ n atomic.Int32 }

func (c *counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := c.n.Add(1)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Run", fmt.Sprint(n))
	w.Header().Set("Set-Cookie", "session=secret")
	body, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "content run=%d body=%s", n, body)
}

// withKey returns a request modifier setting the Idempotency-Key.
func withKey(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(middleware.IdempotencyKeyHeader, key) }
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		rec := &recorder{}
		e := sellertest.New(t, func(c *middleware.Config) { c.Observer = rec })
		h := &counted{}
		route := e.Middleware.MustWrap(h, payReq(timing))
		tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))

		first := sellertest.Do(t, route, tok, withKey(`"order-1"`))
		if first.Status != 200 || first.Body != "content run=1 body=" || first.Header.Get(middleware.ReplayedHeader) != "" {
			t.Fatalf("first request: %d %q %v", first.Status, first.Body, first.Header)
		}
		for range 3 {
			dup := sellertest.Do(t, route, tok, withKey("order-1")) // the bare spelling is the same key
			if dup.Status != 200 || dup.Body != first.Body || dup.Header.Get("X-Run") != "1" || dup.Header.Get(middleware.ReplayedHeader) != "true" {
				t.Fatalf("duplicate: %d %q %v; want the stored response, marked as replay", dup.Status, dup.Body, dup.Header)
			}
			if dup.Header.Get("Set-Cookie") != "" {
				t.Error("a replay carries the first response's Set-Cookie")
			}
		}
		if n := h.n.Load(); n != 1 {
			t.Errorf("handler ran %d times; want 1", n)
		}
		if n := e.Issuer.ChargeCount(); n != 1 {
			t.Errorf("%d charges; want 1", n)
		}
		if n := rec.count(middleware.EventReplayed); n != 3 {
			t.Errorf("%d replay events; want 3", n)
		}
		// Another key is another purchase; no key at all too.
		if got := sellertest.Do(t, route, tok, withKey("order-2")); got.Status != 200 || got.Body != "content run=2 body=" {
			t.Errorf("new key: %d %q", got.Status, got.Body)
		}
		if got := sellertest.Do(t, route, tok); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "" {
			t.Errorf("no key: %d %v", got.Status, got.Header)
		}
		if n := e.Issuer.ChargeCount(); n != 3 {
			t.Errorf("%d charges; want 3", n)
		}
		// The key is scoped to the token.
		other := e.Issuer.Mint(kyapay.TypePay)
		if got := sellertest.Do(t, route, other, withKey("order-1")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "" {
			t.Errorf("same key, other token: %d %v; want a new purchase", got.Status, got.Header)
		}
	})
}

func TestIdempotencyKeyReusedForAnotherRequest(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	h := &counted{}
	route := e.Middleware.MustWrap(h, middleware.Pay(middleware.FixedPrice("0.01")))
	tok := e.Issuer.Mint(kyapay.TypePay)
	post := func(target, body string) func(*http.Request) {
		return func(r *http.Request) {
			*r = *httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
			r.Header.Set(kyapay.HeaderName, tok)
			r.Header.Set(middleware.IdempotencyKeyHeader, "k")
		}
	}
	if got := sellertest.Do(t, route, tok, post("/x?q=1", "a")); got.Status != 200 || got.Body != "content run=1 body=a" {
		t.Fatalf("first: %d %q (the handler must still read the body)", got.Status, got.Body)
	}
	for _, tt := range []struct{ name, target, body string }{
		{"other body", "/x?q=1", "b"},
		{"other query", "/x?q=2", "a"},
		{"other path", "/y?q=1", "a"},
	} {
		got := sellertest.Do(t, route, tok, post(tt.target, tt.body))
		if got.Status != http.StatusUnprocessableEntity || got.Header.Get(middleware.CodeHeader) != string(middleware.CodeIdempotencyKeyReused) {
			t.Errorf("%s: %d %v; want 422 idempotency_key_reused", tt.name, got.Status, got.Header)
		}
	}
	if got := sellertest.Do(t, route, tok, post("/x?q=1", "a")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "true" {
		t.Errorf("same request again: %d %v; want a replay", got.Status, got.Header)
	}
	if n := e.Issuer.ChargeCount(); n != 1 || h.n.Load() != 1 {
		t.Errorf("%d charges, %d runs; want 1 and 1", n, h.n.Load())
	}
}

func TestIdempotencyKeyInvalid(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	route := e.Middleware.MustWrap(&counted{}, middleware.Pay(middleware.FixedPrice("0.01")))
	tok := e.Issuer.Mint(kyapay.TypePay)
	for name, mod := range map[string]func(*http.Request){
		"two lines":     func(r *http.Request) { r.Header.Add("Idempotency-Key", "a"); r.Header.Add("Idempotency-Key", "b") },
		"empty":         withKey(`""`),
		"space in bare": withKey("a b"),
		"unterminated":  withKey(`"abc`),
		"too long":      withKey(strings.Repeat("k", middleware.MaxIdempotencyKeyLen+1)),
		"control":       withKey("\"a\x01\""),
	} {
		got := sellertest.Do(t, route, tok, mod)
		if got.Status != 400 || got.Header.Get(middleware.CodeHeader) != string(middleware.CodeIdempotencyKeyInvalid) || !strings.HasPrefix(got.Body, "ERROR: ") {
			t.Errorf("%s: %d %v %q; want 400 idempotency_key_invalid", name, got.Status, got.Header, got.Body)
		}
	}
	if n := e.Issuer.ChargeCount(); n != 0 {
		t.Errorf("%d charges; want 0", n)
	}
	// Identity routes ignore the header.
	id := e.Middleware.MustWrap(&counted{}, middleware.Identity())
	if got := sellertest.Do(t, id, e.Issuer.Mint(kyapay.TypeKYA), withKey("a b")); got.Status != 200 {
		t.Errorf("identity route with a bad key: %d; want 200 (nothing is charged, the key is ignored)", got.Status)
	}
}

func TestIdempotencyInFlightConflict(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		e := sellertest.New(t)
		entered, release := make(chan struct{}), make(chan struct{})
		var runs atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				close(entered)
				<-release
			}
			io.WriteString(w, "done")
		})
		route := e.Middleware.MustWrap(h, payReq(timing))
		tok := e.Issuer.Mint(kyapay.TypePay)
		firstDone := make(chan sellertest.Result)
		go func() { firstDone <- sellertest.Do(t, route, tok, withKey("k")) }()
		<-entered
		dup := sellertest.Do(t, route, tok, withKey("k"))
		if dup.Status != http.StatusConflict || dup.Header.Get("Retry-After") != "1" || dup.Header.Get(middleware.CodeHeader) != string(middleware.CodeIdempotencyConflict) {
			t.Errorf("duplicate in flight: %d %v; want 409 with Retry-After 1", dup.Status, dup.Header)
		}
		close(release)
		if first := <-firstDone; first.Status != 200 || first.Body != "done" {
			t.Errorf("first: %d %q", first.Status, first.Body)
		}
		if runs.Load() != 1 || e.Issuer.ChargeCount() != 1 {
			t.Errorf("%d runs, %d charges; want 1 and 1", runs.Load(), e.Issuer.ChargeCount())
		}
		if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "true" {
			t.Errorf("after completion: %d %v; want replay", got.Status, got.Header)
		}
	})
}

// A refusal, a charge that did not happen, or a response that was not
// charged leaves nothing behind: the same key works again.
func TestIdempotencyUnchargedIsNotStored(t *testing.T) {
	t.Parallel()
	t.Run("decline then retry", func(t *testing.T) {
		t.Parallel()
		e := sellertest.New(t)
		h := &counted{}
		route := e.Middleware.MustWrap(h, middleware.Pay(middleware.FixedPrice("0.01")))
		tok := e.Issuer.Mint(kyapay.TypePay)
		e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 401, Times: 1})
		if got := sellertest.Do(t, route, tok, withKey("k")); got.Status == 200 {
			t.Fatalf("declined charge answered 200")
		}
		if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "" || got.Body != "content run=1 body=" {
			t.Errorf("retry after a decline: %d %q %v; want a fresh paid answer", got.Status, got.Body, got.Header)
		}
		if n := e.Issuer.ChargeCount(); n != 1 {
			t.Errorf("%d charges; want 1", n)
		}
	})
	t.Run("uncharged failure then retry", func(t *testing.T) {
		t.Parallel()
		e := sellertest.New(t)
		var runs atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				http.Error(w, "busy", 503)
				return
			}
			io.WriteString(w, "ok")
		})
		route := e.Middleware.MustWrap(h, sellertest.PayAfter())
		tok := e.Issuer.Mint(kyapay.TypePay)
		if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 503 {
			t.Fatalf("first: %d", got.Status)
		}
		if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 200 || got.Body != "ok" || got.Header.Get(middleware.ReplayedHeader) != "" {
			t.Errorf("retry: %d %q %v; want the handler's fresh answer", got.Status, got.Body, got.Header)
		}
		if n := e.Issuer.ChargeCount(); n != 1 {
			t.Errorf("%d charges; want 1", n)
		}
	})
	t.Run("depleted refusal", func(t *testing.T) {
		t.Parallel()
		e := sellertest.New(t)
		route := e.Middleware.MustWrap(&counted{}, middleware.Pay(middleware.FixedPrice("0.01")))
		tok := e.SpentElsewhere(t)
		for range 2 {
			if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenDepleted) {
				t.Errorf("depleted: %d %v; want 402 token_depleted each time (refusals are not stored)", got.Status, got.Header)
			}
		}
	})
}

// A response larger than MaxReplayBytes is not stored: a duplicate runs
// the handler again, without charging.
func TestIdempotencyLargeResponseRunsAgainUncharged(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		e := sellertest.New(t, func(c *middleware.Config) { c.MaxReplayBytes = 100 })
		var runs atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			w.Write(bytes.Repeat([]byte("x"), 200))
		})
		route := e.Middleware.MustWrap(h, payReq(timing))
		tok := e.Issuer.Mint(kyapay.TypePay)
		for i := range 3 {
			got := sellertest.Do(t, route, tok, withKey("k"))
			if got.Status != 200 || len(got.Body) != 200 || got.Header.Get(middleware.ReplayedHeader) != "" {
				t.Fatalf("request %d: %d, %d bytes, %v", i, got.Status, len(got.Body), got.Header)
			}
		}
		if runs.Load() != 3 || e.Issuer.ChargeCount() != 1 {
			t.Errorf("%d runs, %d charges; want 3 and 1", runs.Load(), e.Issuer.ChargeCount())
		}
	})
}

// eventsOf returns the recorded events of a kind.
func (r *recorder) of(kind middleware.EventKind) []middleware.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []middleware.Event
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// A charge made although the seller saw a timeout (or a dropped
// connection) is found in the token's charges when the agent retries under
// the same key: the content is delivered without charging again.
func TestUnknownChargeFoundMadeOnRetry(t *testing.T) {
	t.Parallel()
	faults := map[string]kyapaytest.Fault{
		"timeout after success": {Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true, Times: 1},
		"close after success":   {Endpoint: kyapaytest.EndpointCharge, ChargeFirst: true, CloseConnection: true, Times: 1},
		"reset after success":   {Endpoint: kyapaytest.EndpointCharge, ChargeFirst: true, ResetConnection: true, Times: 1},
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
				rec := &recorder{}
				var logs syncBuffer
				e := sellertest.New(t, func(c *middleware.Config) {
					c.Observer = rec
					c.ChargeTimeout = time.Second // ends held charges; normal ones finish well within it on a busy machine
					c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				})
				h := &counted{}
				route := e.Middleware.MustWrap(h, payReq(timing))
				tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("1"))
				e.Issuer.InjectFault(fault)
				first := sellertest.Do(t, route, tok, withKey("k"))
				if first.Status != 502 || first.Header.Get(middleware.CodeHeader) != string(kyapay.CodeChargeUnknown) {
					t.Fatalf("first: %d %v; want 502 charge_unknown", first.Status, first.Header)
				}
				retry := sellertest.Do(t, route, tok, withKey("k"))
				if retry.Status != 200 || !strings.HasPrefix(retry.Body, "content run=1") {
					t.Fatalf("retry: %d %q; want the content of the first run", retry.Status, retry.Body)
				}
				wantRuns := int32(1)
				if timing == middleware.ChargeAfter {
					// The response kept with the pending charge is delivered.
					if retry.Header.Get(middleware.ReplayedHeader) != "true" {
						t.Error("retry not marked as a replay")
					}
				}
				if h.n.Load() != wantRuns || e.Issuer.ChargeCount() != 1 {
					t.Errorf("%d runs, %d charges; want %d and 1", h.n.Load(), e.Issuer.ChargeCount(), wantRuns)
				}
				rc := rec.of(middleware.EventReconciled)
				if len(rc) != 1 || rc[0].Code != "" || rc[0].JTI != kyapaytest.TokenID(tok) || rc[0].Amount.String() != "0.01" {
					t.Errorf("reconciled events = %+v; want one, charged 0.01, with the jti", rc)
				}
				if !strings.Contains(logs.String(), "event=reconciled") || !strings.Contains(logs.String(), "jti="+kyapaytest.TokenID(tok)) {
					t.Errorf("log lacks the reconciliation with the jti:\n%s", logs.String())
				}
				// Later duplicates replay.
				if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "true" || !strings.HasPrefix(got.Body, "content run=1") {
					t.Errorf("later duplicate: %d %q %v", got.Status, got.Body, got.Header)
				}
				if e.Issuer.ChargeCount() != 1 {
					t.Errorf("%d charges; want 1", e.Issuer.ChargeCount())
				}
			})
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
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

// A charge that timed out without being made is not found: until
// ReconcileAfter passes the retry is answered 409, then it charges.
func TestUnknownChargeNotMadeRetryCharges(t *testing.T) {
	t.Parallel()
	bothTimings(t, func(t *testing.T, timing middleware.ChargeTiming) {
		rec := &recorder{}
		e := sellertest.New(t, func(c *middleware.Config) {
			c.Observer = rec
			c.ChargeTimeout = time.Second // ends held charges; normal ones finish well within it on a busy machine
			c.ReconcileAfter = time.Minute
		})
		h := &counted{}
		route := e.Middleware.MustWrap(h, payReq(timing))
		tok := e.Issuer.Mint(kyapay.TypePay)
		e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Hang: true, Times: 1})
		if got := sellertest.Do(t, route, tok, withKey("k")); got.Status != 502 {
			t.Fatalf("first: %d; want 502", got.Status)
		}
		got := sellertest.Do(t, route, tok, withKey("k"))
		if got.Status != http.StatusConflict || got.Header.Get("Retry-After") != "60" {
			t.Fatalf("retry before ReconcileAfter: %d %v; want 409 Retry-After 60", got.Status, got.Header)
		}
		e.Clock.Advance(time.Minute)
		got = sellertest.Do(t, route, tok, withKey("k"))
		if got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "" {
			t.Fatalf("retry after ReconcileAfter: %d %q %v; want a fresh paid answer", got.Status, got.Body, got.Header)
		}
		if e.Issuer.ChargeCount() != 1 {
			t.Errorf("%d charges; want 1", e.Issuer.ChargeCount())
		}
		rc := rec.of(middleware.EventReconciled)
		if len(rc) != 1 || rc[0].Code != kyapay.CodeChargeDeclined {
			t.Errorf("reconciled events %+v; want one, not charged", rc)
		}
	})
}

// Without an idempotency key, a charge of unknown outcome is resolved by
// the reconciler and reported with the jti.
func TestReconcileKeylessUnknownCharges(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	e := sellertest.New(t, func(c *middleware.Config) {
		c.Observer = rec
		// Ends the two held charges; long enough that the normal charge
		// below is not cut short on a busy machine.
		c.ChargeTimeout = time.Second
		c.ReconcileInterval = -1
	})
	route := e.Middleware.MustWrap(&counted{}, middleware.Pay(middleware.FixedPrice("0.01")))
	made, lost := e.Issuer.Mint(kyapay.TypePay), e.Issuer.Mint(kyapay.TypePay)
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true, Times: 1})
	sellertest.Do(t, route, made)
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Hang: true, Times: 1})
	sellertest.Do(t, route, lost)
	// A confirmed charge on the same token is not mistaken for the lost one.
	if got := sellertest.Do(t, route, lost); got.Status != 200 {
		t.Fatalf("paid request: %d", got.Status)
	}
	ctx := context.Background()
	n, err := e.Middleware.Reconcile(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 (the made charge; the lost one is not settled yet)", n, err)
	}
	e.Clock.Advance(middleware.DefaultReconcileAfter)
	if n, err := e.Middleware.Reconcile(ctx); err != nil || n != 1 {
		t.Fatalf("Reconcile after settling = %d, %v; want 1", n, err)
	}
	if n, _ := e.Middleware.Reconcile(ctx); n != 0 {
		t.Errorf("third Reconcile resolved %d; want 0", n)
	}
	got := map[string]kyapay.Code{}
	for _, ev := range rec.of(middleware.EventReconciled) {
		got[ev.JTI] = ev.Code
	}
	want := map[string]kyapay.Code{kyapaytest.TokenID(made): "", kyapaytest.TokenID(lost): kyapay.CodeChargeDeclined}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reconciled %v; want %v", got, want)
	}
}

// A holder that vanishes (a crash) frees its key when its lease ends; a
// retry then resolves whatever it may have charged.
func TestIdempotencyLeaseEndsAfterCrash(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t, func(c *middleware.Config) {
		c.IdempotencyLease = time.Minute
		c.ChargeTimeout = time.Second
		c.ReconcileAfter = 10 * time.Second
	})
	rt, err := e.Middleware.Route(sellertest.PayAfter())
	if err != nil {
		t.Fatal(err)
	}
	tok := e.Issuer.Mint(kyapay.TypePay)
	in := middleware.Input{Token: tok, IdempotencyKey: "k", Fingerprint: middleware.Fingerprint("tools/call", "quote", []byte(`{}`))}
	ctx := context.Background()
	g, err := e.Middleware.Authorize(ctx, rt, in)
	if err != nil || !g.Pending() {
		t.Fatalf("Authorize: %v", err)
	}
	// g's holder crashes here: it never commits or finishes.
	var ie *middleware.IdempotencyError
	if _, err := e.Middleware.Authorize(ctx, rt, in); !errors.As(err, &ie) || ie.Status != 409 {
		t.Fatalf("duplicate during the lease: %v; want 409", err)
	}
	e.Clock.Advance(time.Minute)
	if _, err := e.Middleware.Authorize(ctx, rt, in); !errors.As(err, &ie) || ie.Status != 409 || ie.RetryAfter != 10*time.Second {
		t.Fatalf("after the lease, before ReconcileAfter: %v; want 409 retry in 10s", err)
	}
	e.Clock.Advance(10 * time.Second)
	g2, err := e.Middleware.Authorize(ctx, rt, in)
	if err != nil || !g2.Pending() {
		t.Fatalf("after ReconcileAfter: %v; want a fresh grant", err)
	}
	if _, err := g2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g2.Finish(ctx, []byte("result")); err != nil {
		t.Fatal(err)
	}
	// The crashed holder's late charge attempt is refused: its lease is over.
	if _, err := g.Commit(ctx); err == nil {
		t.Error("the crashed holder charged after its lease ended")
	}
	if n := e.Issuer.ChargeCount(); n != 1 {
		t.Errorf("%d charges; want 1", n)
	}
}

// The gate API without HTTP, as an MCP front end uses it: the key comes
// from _meta, the fingerprint covers the tool and its arguments, and the
// stored bytes are the tool result.
func TestIdempotencyThroughTheGate(t *testing.T) {
	t.Parallel()
	e := sellertest.New(t)
	req := middleware.Pay(middleware.ContextPrice(func(context.Context) (kyapay.Amount, error) { return kyapay.MustParseAmount("0.02"), nil }))
	req.Name, req.Timing = "quote", middleware.ChargeAfter
	rt, err := e.Middleware.Route(req)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.Issuer.Mint(kyapay.TypePay)
	ctx := context.Background()
	call := func(args string) (middleware.Grant, error) {
		return e.Middleware.Authorize(ctx, rt, middleware.Input{Token: tok, IdempotencyKey: "call-1",
			Fingerprint: middleware.Fingerprint("tools/call", "quote", []byte(args))})
	}
	g, err := call(`{"sym":"X"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Replay(); ok {
		t.Fatal("first call is a replay")
	}
	result := []byte(`{"content":[{"type":"text","text":"42"}]}`)
	receipt, err := g.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Finish(ctx, result); err != nil {
		t.Fatal(err)
	}
	g2, err := call(`{"sym":"X"}`)
	if err != nil {
		t.Fatal(err)
	}
	stored, ok := g2.Replay()
	r2, charged := g2.Receipt()
	if !ok || string(stored) != string(result) || !charged || r2.TransactionID != receipt.TransactionID || r2.AmountCharged.String() != "0.02" {
		t.Errorf("second call: replay %v %q, receipt %+v; want the stored result and the first receipt", ok, stored, r2)
	}
	if g2.Pending() {
		t.Error("a replay has a charge pending")
	}
	var ie *middleware.IdempotencyError
	if _, err := call(`{"sym":"Y"}`); !errors.As(err, &ie) || ie.Code != middleware.CodeIdempotencyKeyReused {
		t.Errorf("other arguments: %v; want idempotency_key_reused", err)
	}
	if n := e.Issuer.ChargeCount(); n != 1 {
		t.Errorf("%d charges; want 1", n)
	}
}

// Replicas sharing a Store share what they learn: a depleted token is
// refused by the other replica without a charge call, and a key used on
// one is replayed by the other.
func TestReplicasShareTheStore(t *testing.T) {
	t.Parallel()
	store := middleware.NewMemoryStore(middleware.MemoryStoreConfig{})
	e := sellertest.New(t, func(c *middleware.Config) { c.Store = store })
	m2, err := middleware.New(middleware.Config{Verifier: e.Verifier, Charger: e.Charger, Clock: e.Clock.Now, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	defer e.Middleware.Close()
	h := &counted{}
	r1 := e.Middleware.MustWrap(h, middleware.Pay(middleware.FixedPrice("0.01")))
	r2 := m2.MustWrap(h, middleware.Pay(middleware.FixedPrice("0.01")))
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.01"))
	if got := sellertest.Do(t, r1, tok); got.Status != 200 {
		t.Fatalf("replica 1: %d", got.Status)
	}
	if got := sellertest.Do(t, r2, tok); got.Status != 402 || got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeTokenDepleted) {
		t.Errorf("replica 2 with the depleted token: %d %v; want 402 token_depleted", got.Status, got.Header)
	}
	if n := e.Issuer.Requests(kyapaytest.EndpointCharge); n != 1 {
		t.Errorf("%d charge calls; want 1 (replica 2 knew)", n)
	}
	tok2 := e.Issuer.Mint(kyapay.TypePay)
	sellertest.Do(t, r1, tok2, withKey("k"))
	if got := sellertest.Do(t, r2, tok2, withKey("k")); got.Status != 200 || got.Header.Get(middleware.ReplayedHeader) != "true" {
		t.Errorf("replica 2 with a key used on replica 1: %d %v; want a replay", got.Status, got.Header)
	}
	if n := e.Issuer.ChargeCount(); n != 2 {
		t.Errorf("%d charges; want 2", n)
	}
}

// Close stops the reconciler and leaves no goroutine behind. (Not
// parallel: it counts the process's reconciliation loops.)
func TestCloseStopsTheReconciler(t *testing.T) {
	before := reconcilers()
	e := sellertest.New(t, func(c *middleware.Config) {
		c.ReconcileInterval = time.Hour
		c.ChargeTimeout = time.Second // ends held charges; normal ones finish well within it on a busy machine
	})
	route := e.Middleware.MustWrap(&counted{}, middleware.Pay(middleware.FixedPrice("0.01")))
	if n := reconcilers(); n != before {
		t.Fatalf("%d reconcilers before any charge; want %d (it starts lazily)", n, before)
	}
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 500, Times: 1})
	if got := sellertest.Do(t, route, e.Issuer.Mint(kyapay.TypePay)); got.Status != 502 {
		t.Fatalf("charge answered 500: %d; want 502 charge_unknown", got.Status)
	}
	if n := reconcilers(); n != before+1 {
		t.Fatalf("%d reconcilers after a charge of unknown outcome; want %d", n, before+1)
	}
	if err := e.Middleware.Close(); err != nil {
		t.Fatal(err)
	}
	if n := storetest.SettledReconcilers(before); n != before {
		t.Errorf("%d reconcilers after Close; want %d", n, before)
	}
	if err := e.Middleware.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Requests still work after Close, without restarting the loop.
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 500, Times: 1})
	sellertest.Do(t, route, e.Issuer.Mint(kyapay.TypePay), withKey("k"))
	if got := sellertest.Do(t, route, e.Issuer.Mint(kyapay.TypePay)); got.Status != 200 {
		t.Errorf("paid request after Close: %d", got.Status)
	}
	if n := reconcilers(); n != before {
		t.Errorf("%d reconcilers after requests following Close; want %d", n, before)
	}
}

// reconcilers counts the reconciliation loops running in the process.
func reconcilers() int { return storetest.CountReconcilers() }
