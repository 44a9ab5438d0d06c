package kyapayprom_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapayprom"
)

// newObserver returns an Observer on a fresh registry and the URL of a
// /metrics page serving that registry.
func newObserver(t *testing.T, opts ...kyapayprom.Option) (*kyapayprom.Observer, string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	obs, err := kyapayprom.New(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.PanicOnError}))
	t.Cleanup(srv.Close)
	return obs, srv.URL + "/metrics"
}

// scrape returns the /metrics page as text.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// compare checks the named metrics of the served page against want, a text
// exposition without HELP lines (they are filled in from the page).
func compare(t *testing.T, url, want string, names ...string) {
	t.Helper()
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(withHelp(t, url, want)), names...); err != nil {
		t.Error(err)
	}
}

// withHelp adds to want the HELP line the page has for each TYPE line, so
// the expectations stay readable.
func withHelp(t *testing.T, url, want string) string {
	t.Helper()
	page := scrape(t, url)
	var b strings.Builder
	for line := range strings.Lines(want) {
		line = strings.TrimLeft(line, "\t")
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			re := regexp.MustCompile(`(?m)^# HELP ` + regexp.QuoteMeta(name) + ` .*$`)
			b.WriteString(re.FindString(page))
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	return b.String()
}

// histogramCounts returns the sample count of each series of a histogram
// on the page, keyed by its labels in text form.
func histogramCounts(t *testing.T, page, name string) map[string]uint64 {
	t.Helper()
	fams, err := parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	fam, ok := fams[name]
	if !ok {
		return out
	}
	for _, m := range fam.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		out[strings.Join(labels, ",")] = m.GetHistogram().GetSampleCount()
		if m.GetHistogram().GetSampleSum() < 0 {
			t.Errorf("%s{%v} has a negative sum", name, labels)
		}
	}
	return out
}

// session runs a scripted set of requests through a real middleware and
// fake issuer, reporting to obs, and returns the seller and every secret
// the requests carried (token, jti, subject, email).
func session(t *testing.T, obs middleware.Observer) (*sellertest.Seller, []string) {
	t.Helper()
	s := sellertest.New(t, func(c *middleware.Config) { c.Observer = obs })
	req := middleware.Pay(middleware.PriceFunc(func(r *http.Request) (kyapay.Amount, error) {
		if r.URL.Query().Get("size") == "big" {
			return kyapay.MustParseAmount("0.2"), nil
		}
		return kyapay.MustParseAmount("0.1"), nil
	}))
	req.Name = "report"
	mux := http.NewServeMux()
	mux.Handle("/", s.Middleware.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "report")
	}), req))
	big := func(r *http.Request) { r.URL.RawQuery = "size=big" }

	tok := s.Issuer.Mint(kyapay.TypePay, kyapaytest.Amount("0.3"), kyapaytest.JTI("7e0b9c1a-5c1d-4b5e-9f3a-2d8c6b1e7a47"),
		kyapaytest.Subject("agent-secret-sub"), kyapaytest.Email("buyer@example.com"))
	kya := s.Issuer.Mint(kyapay.TypeKYA, kyapaytest.Email("kya-buyer@example.com"))
	spent := s.SpentElsewhere(t)
	unknown := s.Issuer.Mint(kyapay.TypePay)
	short := s.Issuer.Mint(kyapay.TypePay)

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
			s.Issuer.InjectFault(*st.fault)
		}
		res := sellertest.Do(t, mux, st.token, st.mod...)
		if st.status != 0 && res.Status != st.status {
			t.Fatalf("step %d: status %d; want %d (%s)", i, res.Status, st.status, res.Body)
		}
		if st.status == 0 && res.Status == 200 {
			t.Fatalf("step %d: a short charge was delivered", i)
		}
	}
	return s, []string{tok, kya, spent, unknown, short, "7e0b9c1a-5c1d-4b5e-9f3a-2d8c6b1e7a47", "agent-secret-sub", "buyer@example.com", "kya-buyer@example.com"}
}

func TestScrapeAfterSession(t *testing.T) {
	t.Parallel()
	obs, url := newObserver(t)
	session(t, obs)

	compare(t, url, `
		# TYPE kyapay_requests_total counter
		kyapay_requests_total{code="",outcome="verified",route="report",token_type="pay"} 6
		kyapay_requests_total{code="charge_mismatch",outcome="refused",route="report",token_type="pay"} 1
		kyapay_requests_total{code="charge_unknown",outcome="refused",route="report",token_type="pay"} 1
		kyapay_requests_total{code="pay_required",outcome="refused",route="report",token_type="kya"} 1
		kyapay_requests_total{code="token_depleted",outcome="refused",route="report",token_type="pay"} 2
		kyapay_requests_total{code="token_missing",outcome="refused",route="report",token_type="none"} 1
		# TYPE kyapay_charges_total counter
		kyapay_charges_total{code="",outcome="paid",route="report",token_type="pay"} 2
		kyapay_charges_total{code="charge_mismatch",outcome="mismatch",route="report",token_type="pay"} 1
		kyapay_charges_total{code="charge_unknown",outcome="unknown",route="report",token_type="pay"} 1
		kyapay_charges_total{code="token_depleted",outcome="declined",route="report",token_type="pay"} 1
		# TYPE kyapay_charged_usd_total counter
		kyapay_charged_usd_total{route="report",token_type="pay"} 0.35
		# TYPE kyapay_charges_unknown_pending gauge
		kyapay_charges_unknown_pending 1
	`, kyapayprom.MetricRequests, kyapayprom.MetricCharges, kyapayprom.MetricChargedUSD, kyapayprom.MetricUnknownPending)

	page := scrape(t, url)
	// The exact text, not only the parsed value: money reads as written.
	if !strings.Contains(page, "\n"+`kyapay_charged_usd_total{route="report",token_type="pay"} 0.35`+"\n") {
		t.Errorf("page lacks the exact USD line; got:\n%s", grepLines(page, kyapayprom.MetricChargedUSD))
	}
	// The same three amounts added as float64 do not print as 0.35, so
	// the line above proves the sum is kept exactly.
	naive := 0.0
	for _, a := range []string{"0.1", "0.2", "0.05"} {
		f, _ := strconv.ParseFloat(a, 64)
		naive += f
	}
	if s := strconv.FormatFloat(naive, 'g', -1, 64); s == "0.35" {
		t.Fatalf("float64 sum prints %s; the amounts no longer test exactness", s)
	}

	got := histogramCounts(t, page, kyapayprom.MetricChargeDuration)
	want := map[string]uint64{
		"outcome=paid,route=report":     2,
		"outcome=declined,route=report": 1,
		"outcome=unknown,route=report":  1,
		"outcome=mismatch,route=report": 1,
	}
	if len(got) != len(want) {
		t.Errorf("histogram series %v; want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s{%s} count = %d; want %d", kyapayprom.MetricChargeDuration, k, got[k], n)
		}
	}
	// The verifier's key fetch during the session reaches the metrics
	// through the Middleware: one good refresh of the one published key.
	refreshes := grepLines(page, kyapayprom.MetricJWKSRefreshes)
	if !strings.Contains(refreshes, `outcome="ok"} 1`) || strings.Contains(refreshes, `outcome="error"`) {
		t.Errorf("key refreshes:\n%s\nwant one ok refresh", refreshes)
	}
	if keys := grepLines(page, kyapayprom.MetricJWKSKeys); !strings.Contains(keys, "} 1") {
		t.Errorf("key count:\n%s\nwant 1", keys)
	}
	if last := grepLines(page, kyapayprom.MetricJWKSLastRefresh); !strings.Contains(last, "{issuer=") {
		t.Errorf("no last-refresh timestamp:\n%s", last)
	}
}

// grepLines returns the lines of page that mention name.
func grepLines(page, name string) string {
	var out []string
	for line := range strings.Lines(page) {
		if strings.Contains(line, name) {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}

func TestNoIdentifyingLabels(t *testing.T) {
	t.Parallel()
	obs, url := newObserver(t)
	_, secrets := session(t, obs)
	// Key and reconciliation events carry identifying fields too.
	for _, k := range []middleware.EventKind{middleware.EventReconciled, middleware.EventReplayed,
		middleware.EventKeysRefreshed, middleware.EventKeysRefreshFailed, middleware.EventKeyUnknown} {
		obs.Observe(context.Background(), middleware.Event{Kind: k, Route: "report", Issuer: "https://issuer.example",
			JTI: "7e0b9c1a-5c1d-4b5e-9f3a-2d8c6b1e7a47", Subject: "agent-secret-sub", Path: "/x", Err: errors.New("agent-secret-sub")})
	}
	page := scrape(t, url)
	for _, s := range secrets {
		if strings.Contains(page, s) {
			t.Errorf("metrics page contains %q", s)
		}
	}
	allowed := map[string]bool{"route": true, "token_type": true, "outcome": true, "code": true, "issuer": true, "le": true}
	fams, err := parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for name, fam := range fams {
		if !strings.HasPrefix(name, "kyapay_") {
			t.Errorf("metric %s lacks the kyapay_ prefix", name)
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %s", name, l.GetName())
				}
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
	clock := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	obs, url := newObserver(t, kyapayprom.WithClock(clock.Now), kyapayprom.WithMaxIssuers(2))
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
	// An invalid UTF-8 issuer must not panic the request path.
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventKeyUnknown, Issuer: "\xff"})

	compare(t, url, `
		# TYPE kyapay_jwks_refreshes_total counter
		kyapay_jwks_refreshes_total{issuer="https://a.example",outcome="error"} 1
		kyapay_jwks_refreshes_total{issuer="https://a.example",outcome="ok"} 1
		kyapay_jwks_refreshes_total{issuer="https://b.example",outcome="ok"} 1
		kyapay_jwks_refreshes_total{issuer="other",outcome="error"} 1
		# TYPE kyapay_jwks_last_refresh_timestamp_seconds gauge
		kyapay_jwks_last_refresh_timestamp_seconds{issuer="https://a.example"} 1.8e+09
		kyapay_jwks_last_refresh_timestamp_seconds{issuer="https://b.example"} 1.8000003005e+09
		# TYPE kyapay_jwks_keys gauge
		kyapay_jwks_keys{issuer="https://a.example"} 2
		kyapay_jwks_keys{issuer="https://b.example"} 1
		# TYPE kyapay_jwks_key_unknown_total counter
		kyapay_jwks_key_unknown_total{issuer="https://b.example"} 2
		kyapay_jwks_key_unknown_total{issuer="other"} 1
	`, kyapayprom.MetricJWKSRefreshes, kyapayprom.MetricJWKSLastRefresh, kyapayprom.MetricJWKSKeys, kyapayprom.MetricJWKSKeyUnknown)
}

func TestReconcileAndReplay(t *testing.T) {
	t.Parallel()
	obs, url := newObserver(t)
	ctx := context.Background()
	unknown := middleware.Event{Kind: middleware.EventUnknown, Route: "report", TokenType: kyapay.TypePay,
		Code: kyapay.CodeChargeUnknown, Duration: 2 * time.Second}
	obs.Observe(ctx, unknown)
	obs.Observe(ctx, unknown)
	obs.Observe(ctx, unknown)
	// Found charged: the money counts as charged.
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report", TokenType: kyapay.TypePay,
		Amount: kyapay.MustParseAmount("0.1")})
	// Found not charged.
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report", TokenType: kyapay.TypePay,
		Code: kyapay.CodeChargeDeclined})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReplayed, Route: "report", TokenType: kyapay.TypePay})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventNotSent, Route: "report", TokenType: kyapay.TypePay,
		Code: kyapay.CodeChargeUnavailable})
	// An over-charge is delivered and counted at the amount charged.
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventMismatch, Route: "report", TokenType: kyapay.TypePay,
		Price: kyapay.MustParseAmount("0.1"), HasPrice: true, Amount: kyapay.MustParseAmount("0.2")})
	// A kind this module does not know is ignored.
	obs.Observe(ctx, middleware.Event{Kind: 200, Route: "report"})

	compare(t, url, `
		# TYPE kyapay_charges_unknown_pending gauge
		kyapay_charges_unknown_pending 1
		# TYPE kyapay_charges_reconciled_total counter
		kyapay_charges_reconciled_total{outcome="charged",route="report"} 1
		kyapay_charges_reconciled_total{outcome="not_charged",route="report"} 1
		# TYPE kyapay_requests_total counter
		kyapay_requests_total{code="",outcome="replayed",route="report",token_type="pay"} 1
		# TYPE kyapay_charges_total counter
		kyapay_charges_total{code="",outcome="mismatch",route="report",token_type="pay"} 1
		kyapay_charges_total{code="charge_unavailable",outcome="not_sent",route="report",token_type="pay"} 1
		kyapay_charges_total{code="charge_unknown",outcome="unknown",route="report",token_type="pay"} 3
		# TYPE kyapay_charged_usd_total counter
		kyapay_charged_usd_total{route="report",token_type="pay"} 0.3
	`, kyapayprom.MetricUnknownPending, kyapayprom.MetricReconciled, kyapayprom.MetricRequests,
		kyapayprom.MetricCharges, kyapayprom.MetricChargedUSD)
	if page := scrape(t, url); !strings.Contains(page, "\n"+`kyapay_charged_usd_total{route="report",token_type="pay"} 0.3`+"\n") {
		t.Errorf("page lacks the exact USD line; got:\n%s", grepLines(page, kyapayprom.MetricChargedUSD))
	}
}

func TestPendingNeverNegative(t *testing.T) {
	t.Parallel()
	obs, url := newObserver(t)
	ctx := context.Background()
	// Reconciliations of charges this process did not see (made before a
	// restart) must not drive the gauge below zero.
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report"})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventReconciled, Route: "report"})
	obs.Observe(ctx, middleware.Event{Kind: middleware.EventUnknown, Route: "report"})
	compare(t, url, `
		# TYPE kyapay_charges_unknown_pending gauge
		kyapay_charges_unknown_pending 1
	`, kyapayprom.MetricUnknownPending)
}

// Concurrent paid events: the USD total is exact and the counts add up,
// whatever the interleaving.
func TestConcurrentChargesExact(t *testing.T) {
	t.Parallel()
	obs, url := newObserver(t)
	const workers, each = 8, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tt := kyapay.TypePay
			if w%2 == 1 {
				tt = kyapay.TypeKYAPay
			}
			for range each {
				obs.Observe(context.Background(), middleware.Event{Kind: middleware.EventPaid, Route: "report",
					TokenType: tt, Amount: kyapay.MustParseAmount("0.000001"), Duration: time.Millisecond})
				obs.Observe(context.Background(), middleware.Event{Kind: middleware.EventPaid, Route: "report",
					TokenType: tt, Amount: kyapay.MustParseAmount("0.1"), Duration: time.Millisecond})
			}
		})
	}
	wg.Wait()
	// Per token type: 4 workers * 250 * (0.000001 + 0.1) = 100.001 USD.
	compare(t, url, `
		# TYPE kyapay_charged_usd_total counter
		kyapay_charged_usd_total{route="report",token_type="kya-pay"} 100.001
		kyapay_charged_usd_total{route="report",token_type="pay"} 100.001
		# TYPE kyapay_charges_total counter
		kyapay_charges_total{code="",outcome="paid",route="report",token_type="kya-pay"} 2000
		kyapay_charges_total{code="",outcome="paid",route="report",token_type="pay"} 2000
	`, kyapayprom.MetricChargedUSD, kyapayprom.MetricCharges)
	page := scrape(t, url)
	for _, tt := range []string{"pay", "kya-pay"} {
		line := `kyapay_charged_usd_total{route="report",token_type="` + tt + `"} 100.001`
		if !strings.Contains(page, "\n"+line+"\n") {
			t.Errorf("page lacks %q; got:\n%s", line, grepLines(page, kyapayprom.MetricChargedUSD))
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := kyapayprom.New(nil); err == nil {
		t.Error("New(nil) succeeded; want an error (never the global registry by default)")
	}
	reg := prometheus.NewRegistry()
	if _, err := kyapayprom.New(reg); err != nil {
		t.Fatal(err)
	}
	_, err := kyapayprom.New(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New on one registry: %v; want an AlreadyRegisteredError", err)
	}
	// Two Middlewares share a registry through a constant label.
	shared := prometheus.NewRegistry()
	for _, name := range []string{"eu", "us"} {
		if _, err := kyapayprom.New(prometheus.WrapRegistererWith(prometheus.Labels{"seller": name}, shared)); err != nil {
			t.Errorf("wrapped registerer %s: %v", name, err)
		}
	}
	// Custom buckets reach the histogram.
	reg2 := prometheus.NewRegistry()
	obs, err := kyapayprom.New(reg2, kyapayprom.WithChargeBuckets([]float64{1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	obs.Observe(context.Background(), middleware.Event{Kind: middleware.EventPaid, Route: "r", Duration: 1500 * time.Millisecond})
	if err := testutil.GatherAndCompare(reg2, strings.NewReader(`
		# HELP kyapay_charge_duration_seconds Duration of charge calls in seconds, retries included, by outcome.
		# TYPE kyapay_charge_duration_seconds histogram
		kyapay_charge_duration_seconds_bucket{outcome="paid",route="r",le="1"} 0
		kyapay_charge_duration_seconds_bucket{outcome="paid",route="r",le="2"} 1
		kyapay_charge_duration_seconds_bucket{outcome="paid",route="r",le="+Inf"} 1
		kyapay_charge_duration_seconds_sum{outcome="paid",route="r"} 1.5
		kyapay_charge_duration_seconds_count{outcome="paid",route="r"} 1
	`), kyapayprom.MetricChargeDuration); err != nil {
		t.Error(err)
	}
}

// Metric names and help texts follow Prometheus conventions.
func TestLint(t *testing.T) {
	t.Parallel()
	obs, url := newObserver(t)
	session(t, obs)
	for _, k := range []middleware.EventKind{middleware.EventReconciled, middleware.EventKeysRefreshed,
		middleware.EventKeysRefreshFailed, middleware.EventKeyUnknown} {
		obs.Observe(context.Background(), middleware.Event{Kind: k, Route: "report", Issuer: "https://a.example"})
	}
	problems, err := testutil.GatherAndLint(gathererFromURL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// gathererFromURL parses a served page into a Gatherer.
func gathererFromURL(t *testing.T, url string) prometheus.Gatherer {
	fams, err := parse(strings.NewReader(scrape(t, url)))
	if err != nil {
		t.Fatal(err)
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for _, f := range fams {
			out = append(out, f)
		}
		return out, nil
	})
}

// parse reads a text exposition.
func parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}
