package middleware_test

import (
	"bytes"
	"context"
	"github.com/kyapay/kyapay-go/jwks"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []middleware.Event
}

func (r *recorder) Observe(ctx context.Context, e middleware.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) count(kind middleware.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func TestObserverSeesEveryDecisionAndLogsAgree(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	var logs bytes.Buffer
	e := sellertest.New(t, func(c *middleware.Config) {
		c.Observer = rec
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	mux := http.NewServeMux()
	mux.Handle("GET /x", e.Middleware.MustWrap(okHandler, middleware.Pay(middleware.FixedPrice("0.01"))))
	tok := e.Issuer.Mint(kyapay.TypePay, kyapaytest.Balance("0.02"), kyapaytest.Email("buyer@example.com"))

	sellertest.Do(t, mux, "")  // refused: token_missing
	sellertest.Do(t, mux, tok) // paid
	sellertest.Do(t, mux, tok) // paid, balance 0
	sellertest.Do(t, mux, tok) // refused offline: token_depleted
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 503, Times: 1})
	sellertest.Do(t, mux, e.Issuer.Mint(kyapay.TypePay)) // unknown outcome

	want := map[middleware.EventKind]int{
		// missing, depleted, and the request answered charge_unknown.
		middleware.EventRefused:       3,
		middleware.EventVerified:      4,
		middleware.EventChargeStarted: 3,
		middleware.EventPaid:          2,
		middleware.EventUnknown:       1,
	}
	for kind, n := range want {
		if got := rec.count(kind); got != n {
			t.Errorf("%s events = %d; want %d", kind, got, n)
		}
		if got := strings.Count(logs.String(), "event="+kind.String()+" "); got != n {
			t.Errorf("%s log lines = %d; want %d (logs and events must agree)", kind, got, n)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var paid []middleware.Event
	for _, ev := range rec.events {
		if ev.Kind == middleware.EventPaid {
			paid = append(paid, ev)
		}
		if ev.Kind != middleware.EventKeysRefreshed && ev.Route != "GET /x" {
			t.Errorf("%s event route %q; want the mux pattern", ev.Kind, ev.Route)
		}
	}
	if len(paid) == 2 {
		last := paid[1]
		if last.Amount.String() != "0.01" || !last.HasRemaining || !last.Remaining.IsZero() || last.JTI != kyapaytest.TokenID(tok) ||
			last.TokenType != kyapay.TypePay || last.Issuer != e.Issuer.Issuer() {
			t.Errorf("paid event %+v", last)
		}
	}
	if strings.Contains(logs.String(), "buyer@example.com") || strings.Contains(logs.String(), tok[:40]) {
		t.Error("logs carry an email or the token")
	}
}

func TestObserverNilAllocatesNothingExtra(t *testing.T) {
	e := sellertest.New(t)
	h := e.Middleware.MustWrap(okNoWrite, middleware.Identity())
	tok := e.Issuer.Mint(kyapay.TypeKYA)
	r, _ := http.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set(kyapay.HeaderName, tok)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // warm the verified-token cache
	allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) })
	// r.WithContext and context.WithValue: the price of handing the claims
	// to the handler. Nothing for events.
	if allocs > 2 {
		t.Errorf("cached identity route allocates %.0f per request; want at most 2", allocs)
	}
}

var okNoWrite = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

func TestKeyUnknownEventNamesTheTrustedIssuer(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	e := sellertest.New(t, func(c *middleware.Config) { c.Observer = rec })
	tok := e.Issuer.Mint(kyapay.TypeKYA, kyapaytest.SignWith(kyapaytest.NewKey(), "never-published"))
	got := sellertest.Do(t, e.Middleware.MustWrap(okHandler, middleware.AnyToken()), tok)
	if got.Header.Get(middleware.CodeHeader) != string(kyapay.CodeKeyUnknown) {
		t.Fatalf("refusal %q; want key_unknown", got.Header.Get(middleware.CodeHeader))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	found := false
	for _, ev := range rec.events {
		if ev.Kind == middleware.EventKeyUnknown {
			found = true
			if ev.Issuer != e.Issuer.Issuer() {
				t.Errorf("key_unknown event issuer %q; want %q", ev.Issuer, e.Issuer.Issuer())
			}
		}
	}
	if !found {
		t.Error("no key_unknown event")
	}
}

func TestKeyRefreshesBecomeEventsUntilClose(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	e := sellertest.New(t, func(c *middleware.Config) { c.Observer = rec })
	cache, ok := e.Verifier.Keys().(*jwks.Cache)
	if !ok {
		t.Fatalf("the test seller's key source is %T", e.Verifier.Keys())
	}
	before := rec.count(middleware.EventKeysRefreshed)
	if err := cache.Refresh(context.Background(), e.Issuer.Issuer()); err != nil {
		t.Fatal(err)
	}
	if got := rec.count(middleware.EventKeysRefreshed); got != before+1 {
		t.Fatalf("keys_refreshed events %d; want %d", got, before+1)
	}
	rec.mu.Lock()
	last := rec.events[len(rec.events)-1]
	rec.mu.Unlock()
	if last.Issuer != e.Issuer.Issuer() || last.Keys < 1 {
		t.Errorf("keys_refreshed event %+v", last)
	}
	e.Issuer.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointJWKS, Status: 500, Times: 1})
	cache.Refresh(context.Background(), e.Issuer.Issuer())
	if rec.count(middleware.EventKeysRefreshFailed) != 1 {
		t.Errorf("keys_refresh_failed events %d; want 1", rec.count(middleware.EventKeysRefreshFailed))
	}
	e.Middleware.Close()
	cache.Refresh(context.Background(), e.Issuer.Issuer())
	if got := rec.count(middleware.EventKeysRefreshed); got != before+1 {
		t.Errorf("keys_refreshed events after Close %d; want %d", got, before+1)
	}
}
