package kyapayotel_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

// session runs a scripted set of requests through a real middleware and
// fake issuer, with obs as the Observer, the Charger wrapped for tracing
// with s.tp, and each request served under an otelhttp server span. It
// returns every secret the requests carried.
func session(t *testing.T, s *sdk, obs middleware.Observer) []string {
	t.Helper()
	seller := sellertest.New(t, func(c *middleware.Config) {
		c.Observer = obs
		c.Charger = kyapayotel.WrapCharger(c.Charger, s.tp)
	})
	req := middleware.Pay(middleware.PriceFunc(func(r *http.Request) (kyapay.Amount, error) {
		if r.URL.Query().Get("size") == "big" {
			return kyapay.MustParseAmount("0.2"), nil
		}
		return kyapay.MustParseAmount("0.1"), nil
	}))
	req.Name = "report"
	mux := http.NewServeMux()
	mux.Handle("/", seller.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "report")
	}), req))
	h := otelhttp.NewHandler(mux, "server", otelhttp.WithTracerProvider(s.tp), otelhttp.WithMeterProvider(noop.NewMeterProvider()))
	big := func(r *http.Request) { r.URL.RawQuery = "size=big" }

	tok := seller.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("0.3"), kyapaytest.JTI("7e0b9c1a-5c1d-4b5e-9f3a-2d8c6b1e7a47"),
		kyapaytest.Subject("agent-secret-sub"), kyapaytest.Email("buyer@example.com"))
	kya := seller.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Email("kya-buyer@example.com"))
	spent := seller.SpentElsewhere(t)
	unknown := seller.Issuer.Mint(kyapay.TypePay)
	short := seller.Issuer.Mint(kyapay.TypePay)

	steps := []struct {
		token  string
		mod    []func(*http.Request)
		status int
		fault  *kyapaytest.Fault
	}{
		{"", nil, 402, nil},                         // token_missing
		{tok, nil, 200, nil},                        // paid 0.1
		{tok, []func(*http.Request){big}, 200, nil}, // paid 0.2, balance 0
		{tok, nil, 402, nil},                        // token_depleted offline
		{kya, nil, 402, nil},                        // pay_required
		{spent, nil, 402, nil},                      // declined by the charge API: token_depleted
		{unknown, nil, 502, &kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 503, Times: 1}},
		{short, nil, 0, &kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 200, Times: 1,
			Body: `{"amountCharged":"0.05","remainingBalance":"0.95"}`}},
	}
	for i, st := range steps {
		if st.fault != nil {
			seller.Issuer.InjectFault(*st.fault)
		}
		res := sellertest.Do(t, h, st.token, st.mod...)
		if st.status != 0 && res.Status != st.status {
			t.Fatalf("step %d: status %d; want %d (%s)", i, res.Status, st.status, res.Body)
		}
		if st.status == 0 && res.Status == 200 {
			t.Fatalf("step %d: a short charge was delivered", i)
		}
	}
	return []string{tok, kya, spent, unknown, short, "7e0b9c1a-5c1d-4b5e-9f3a-2d8c6b1e7a47", "agent-secret-sub", "buyer@example.com", "kya-buyer@example.com"}
}

func TestMetricsAfterSession(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	obs, err := kyapayotel.New(s.mp)
	if err != nil {
		t.Fatal(err)
	}
	session(t, s, obs)
	points, units := s.metrics(t)

	wantValues(t, points, kyapayotel.MetricRequests, map[string]float64{
		"outcome=verified,route=report,token.type=pay":                     6,
		"code=charge_mismatch,outcome=refused,route=report,token.type=pay": 1,
		"code=charge_unknown,outcome=refused,route=report,token.type=pay":  1,
		"code=pay_required,outcome=refused,route=report,token.type=kya":    1,
		"code=token_depleted,outcome=refused,route=report,token.type=pay":  2,
		"code=token_missing,outcome=refused,route=report,token.type=none":  1,
	})
	wantValues(t, points, kyapayotel.MetricCharges, map[string]float64{
		"outcome=paid,route=report,token.type=pay":                          2,
		"code=charge_mismatch,outcome=mismatch,route=report,token.type=pay": 1,
		"code=charge_unknown,outcome=unknown,route=report,token.type=pay":   1,
		"code=token_depleted,outcome=declined,route=report,token.type=pay":  1,
	})
	wantCounts(t, points, kyapayotel.MetricChargeDuration, map[string]uint64{
		"outcome=paid,route=report":     2,
		"outcome=declined,route=report": 1,
		"outcome=unknown,route=report":  1,
		"outcome=mismatch,route=report": 1,
	})
	wantValues(t, points, kyapayotel.MetricUnknownPending, map[string]float64{"": 1})
	wantValues(t, points, kyapayotel.MetricCharged, map[string]float64{"route=report,token.type=pay": 0.35})
	usd := points[kyapayotel.MetricCharged]["route=report,token.type=pay"].value
	if got := strconv.FormatFloat(usd, 'g', -1, 64); got != "0.35" {
		t.Errorf("USD charged prints %s; want exactly 0.35", got)
	}
	naive := 0.0
	for _, a := range []string{"0.1", "0.2", "0.05"} {
		f, _ := strconv.ParseFloat(a, 64)
		naive += f
	}
	if strconv.FormatFloat(naive, 'g', -1, 64) == "0.35" {
		t.Fatal("float64 sum prints 0.35; the amounts no longer test exactness")
	}

	for name, unit := range map[string]string{
		kyapayotel.MetricRequests: "{request}", kyapayotel.MetricCharges: "{charge}",
		kyapayotel.MetricChargeDuration: "s", kyapayotel.MetricCharged: "USD",
		kyapayotel.MetricUnknownPending: "{charge}",
	} {
		if units[name] != unit {
			t.Errorf("%s unit %q; want %q", name, units[name], unit)
		}
	}
	// The verifier's key fetch during the session reaches the metrics
	// through the Middleware: one good refresh of the one published key.
	for name, want := range map[string]string{kyapayotel.MetricJWKSRefreshes: ",outcome=ok", kyapayotel.MetricJWKSKeys: ""} {
		ps := points[name]
		ok := len(ps) == 1
		for attrs, p := range ps {
			ok = ok && strings.HasPrefix(attrs, "issuer=http") && strings.HasSuffix(attrs, want) && p.value == 1
		}
		if !ok {
			t.Errorf("%s points %v; want one point of 1 for the issuer", name, ps)
		}
	}
	if len(points[kyapayotel.MetricJWKSAge]) != 1 {
		t.Errorf("%s points %v; want one per issuer", kyapayotel.MetricJWKSAge, points[kyapayotel.MetricJWKSAge])
	}
}

func TestChargeSpansAndRequestEvents(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	obs, err := kyapayotel.New(s.mp)
	if err != nil {
		t.Fatal(err)
	}
	secrets := session(t, s, obs)
	spans := s.spans.GetSpans()

	servers := map[trace.SpanID]tracetest.SpanStub{}
	var charges []tracetest.SpanStub
	for _, sp := range spans {
		switch {
		case sp.Name == kyapayotel.SpanCharge:
			charges = append(charges, sp)
		case sp.SpanKind == trace.SpanKindServer:
			servers[sp.SpanContext.SpanID()] = sp
		}
	}
	if len(servers) != 8 {
		t.Fatalf("%d server spans; want 8:\n%s", len(servers), describe(spans))
	}
	want := []struct {
		amount, outcome, charged, reason string
		status                           codes.Code
	}{
		{"0.1", "paid", "0.1", "", codes.Unset},
		{"0.2", "paid", "0.2", "", codes.Unset},
		{"0.1", "declined", "", "insufficient_balance", codes.Error},
		{"0.1", "unknown", "", "server_error", codes.Error},
		{"0.1", "mismatch", "0.05", "", codes.Unset},
	}
	if len(charges) != len(want) {
		t.Fatalf("%d charge spans; want %d:\n%s", len(charges), len(want), describe(spans))
	}
	for i, w := range want {
		sp := charges[i]
		a := spanAttrs(sp)
		if a["kyapay.amount"] != w.amount || a["kyapay.outcome"] != w.outcome || a["kyapay.amount.charged"] != w.charged ||
			a["kyapay.charge.reason"] != w.reason || sp.Status.Code != w.status {
			t.Errorf("charge span %d: %v status %v; want %+v", i, a, sp.Status, w)
		}
		if w.status == codes.Error && a["error.type"] != w.outcome {
			t.Errorf("charge span %d: error.type %q; want %q", i, a["error.type"], w.outcome)
		}
		server, ok := servers[sp.Parent.SpanID()]
		if !ok {
			t.Errorf("charge span %d is not a child of a request span:\n%s", i, describe(spans))
			continue
		}
		// The request span carries the middleware's events of its charge.
		var names []string
		for _, ev := range server.Events {
			names = append(names, ev.Name)
		}
		joined := strings.Join(names, " ")
		if !strings.Contains(joined, "kyapay.verified kyapay."+w.outcome) {
			t.Errorf("request span of charge %d has events %q", i, joined)
		}
	}

	// No secret in any span, attribute or event.
	for _, sp := range spans {
		var all []string
		all = append(all, sp.Name, sp.Status.Description)
		for _, kv := range sp.Attributes {
			all = append(all, kv.Value.Emit())
		}
		for _, ev := range sp.Events {
			all = append(all, ev.Name)
			for _, kv := range ev.Attributes {
				all = append(all, kv.Value.Emit())
			}
		}
		text := strings.Join(all, "\n")
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("span %s contains %q", sp.Name, secret)
			}
		}
	}
}

// fixedClock is a clock set by the test.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func TestKeyEvents(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	clock := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	obs, err := kyapayotel.New(s.mp, kyapayotel.WithClock(clock.Now), kyapayotel.WithMaxIssuers(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b, c := "https://a.example", "https://b.example", "https://c.example"
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeysRefreshed, Issuer: a, Keys: 2})
	clock.Set(time.Unix(1_800_000_300, 500_000_000))
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeysRefreshFailed, Issuer: a, Err: errors.New("503")})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeysRefreshed, Issuer: b, Keys: 1})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeyUnknown, Issuer: b})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeyUnknown, Issuer: b})
	// A third issuer exceeds WithMaxIssuers(2).
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeysRefreshFailed, Issuer: c})
	clock.Set(time.Unix(1_800_000_360, 0))

	points, units := s.metrics(t)
	wantValues(t, points, kyapayotel.MetricJWKSRefreshes, map[string]float64{
		"issuer=https://a.example,outcome=error": 1,
		"issuer=https://a.example,outcome=ok":    1,
		"issuer=https://b.example,outcome=ok":    1,
		"issuer=other,outcome=error":             1,
	})
	wantValues(t, points, kyapayotel.MetricJWKSAge, map[string]float64{
		"issuer=https://a.example": 360,
		"issuer=https://b.example": 59.5,
	})
	wantValues(t, points, kyapayotel.MetricJWKSKeys, map[string]float64{
		"issuer=https://a.example": 2,
		"issuer=https://b.example": 1,
	})
	wantValues(t, points, kyapayotel.MetricJWKSKeyUnknown, map[string]float64{"issuer=https://b.example": 2})
	if units[kyapayotel.MetricJWKSAge] != "s" {
		t.Errorf("%s unit %q; want s", kyapayotel.MetricJWKSAge, units[kyapayotel.MetricJWKSAge])
	}
}

func TestReconcileAndReplay(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	obs, err := kyapayotel.New(s.mp)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Reconciliations of charges this process did not see must not drive
	// the pending count below zero.
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report", Code: kyapay.CodeChargeDeclined})
	unknown := middleware.Event{Kind: middleware.EventUnknown, Route: "report", TokenType: kyapay.TypePay,
		Code: kyapay.CodeChargeUnknown, Duration: 2 * time.Second}
	obs.Observe(ctx, unknown)
	obs.Observe(ctx, unknown)
	obs.Observe(ctx, unknown)
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report", TokenType: kyapay.TypePay,
		Amount: kyapay.MustParseAmount("0.1")})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report", TokenType: kyapay.TypePay,
		Code: kyapay.CodeChargeDeclined})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReplayed, Route: "report", TokenType: kyapay.TypePay})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventNotSent, Route: "report", TokenType: kyapay.TypePay,
		Code: kyapay.CodeChargeUnavailable})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventMismatch, Route: "report", TokenType: kyapay.TypePay,
		Price: kyapay.MustParseAmount("0.1"), HasPrice: true, Amount: kyapay.MustParseAmount("0.2")})
	obs.Observe(ctx, middleware.Event{Kind: 200, Route: "report"})

	points, _ := s.metrics(t)
	wantValues(t, points, kyapayotel.MetricUnknownPending, map[string]float64{"": 1})
	wantValues(t, points, kyapayotel.MetricReconciled, map[string]float64{
		"outcome=charged,route=report":     1,
		"outcome=not_charged,route=report": 2,
	})
	wantValues(t, points, kyapayotel.MetricRequests, map[string]float64{"outcome=replayed,route=report,token.type=pay": 1})
	wantValues(t, points, kyapayotel.MetricCharges, map[string]float64{
		"outcome=mismatch,route=report,token.type=pay":                         1,
		"code=charge_unavailable,outcome=not_sent,route=report,token.type=pay": 1,
		"code=charge_unknown,outcome=unknown,route=report,token.type=pay":      3,
	})
	wantValues(t, points, kyapayotel.MetricCharged, map[string]float64{"route=report,token.type=pay": 0.3})
	if got := strconv.FormatFloat(points[kyapayotel.MetricCharged]["route=report,token.type=pay"].value, 'g', -1, 64); got != "0.3" {
		t.Errorf("USD charged prints %s; want 0.3", got)
	}
}

// Concurrent paid events: the USD total is exact and the counts add up,
// whatever the interleaving.
func TestConcurrentChargesExact(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	obs, err := kyapayotel.New(s.mp)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tt := kyapay.TypePay
			if w%2 == 1 {
				tt = kyapay.TypeKYAPay
			}
			for range each {
				for _, a := range []string{"0.000001", "0.1"} {
					obs.Observe(context.Background(), middleware.Event{Kind: middleware.EventPaid, Route: "report",
						TokenType: tt, Amount: kyapay.MustParseAmount(a), Duration: time.Millisecond})
				}
			}
		})
	}
	wg.Wait()
	points, _ := s.metrics(t)
	wantValues(t, points, kyapayotel.MetricCharges, map[string]float64{
		"outcome=paid,route=report,token.type=kya-pay": 2000,
		"outcome=paid,route=report,token.type=pay":     2000,
	})
	for _, tt := range []string{"pay", "kya-pay"} {
		v := points[kyapayotel.MetricCharged]["route=report,token.type="+tt].value
		if got := strconv.FormatFloat(v, 'g', -1, 64); got != "100.001" {
			t.Errorf("USD charged for %s prints %s; want 100.001", tt, got)
		}
	}
}

func TestNewWithDefaults(t *testing.T) {
	t.Parallel()
	// A nil provider is the global one, a no-op until an SDK is installed.
	obs, err := kyapayotel.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	obs.Observe(context.Background(), middleware.Event{Kind: middleware.EventPaid, Amount: kyapay.MustParseAmount("1")})
	c := kyapayotel.WrapCharger(stubCharger{}, nil)
	if _, err := c.Charge(context.Background(), "tok", kyapay.MustParseAmount("0.01")); err != nil {
		t.Fatal(err)
	}

	// Custom buckets reach the histogram.
	s := newSDK(t)
	obs, err = kyapayotel.New(s.mp, kyapayotel.WithChargeBuckets([]float64{1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	obs.Observe(context.Background(), middleware.Event{Kind: middleware.EventPaid, Route: "r", Duration: 1500 * time.Millisecond})
	points, _ := s.metrics(t)
	if p := points[kyapayotel.MetricChargeDuration]["outcome=paid,route=r"]; p.count != 1 || p.value != 1.5 ||
		len(p.bounds) != 2 || p.bounds[0] != 1 || p.bounds[1] != 2 {
		t.Errorf("histogram point %+v; want count 1, sum 1.5, bounds [1 2]", p)
	}
}
