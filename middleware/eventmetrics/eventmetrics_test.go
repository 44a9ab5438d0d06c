package eventmetrics_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kyapay/kyapay-go/internal/sellertest"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/eventmetrics"
)

// Every event kind, with identifying fields set, classifies into the
// documented family and label values, and none of those values is an
// identifying field.
func TestClassify(t *testing.T) {
	t.Parallel()
	base := middleware.Event{Route: "report", TokenType: kyapay.TypePay, Issuer: "https://a.example",
		JTI: "7e0b9c1a-5c1d-4b5e-9f3a-2d8c6b1e7a47", Subject: "agent-secret-sub", Path: "/secret-path",
		Amount: kyapay.MustParseAmount("0.1"), Duration: time.Second, Keys: 3, Err: errors.New("agent-secret-sub")}
	with := func(k middleware.EventKind, code kyapay.Code) middleware.Event {
		e := base
		e.Kind, e.Code = k, code
		return e
	}
	tests := []struct {
		e    middleware.Event
		want eventmetrics.Class
		ok   bool
	}{
		{with(middleware.EventVerified, ""), eventmetrics.Class{Family: eventmetrics.FamilyRequests,
			Route: "report", TokenType: "pay", Outcome: "verified"}, true},
		// A code on a verified or replayed request is not a label value.
		{with(middleware.EventVerified, kyapay.CodeChargeDeclined), eventmetrics.Class{Family: eventmetrics.FamilyRequests,
			Route: "report", TokenType: "pay", Outcome: "verified"}, true},
		{with(middleware.EventRefused, kyapay.CodeTokenDepleted), eventmetrics.Class{Family: eventmetrics.FamilyRequests,
			Route: "report", TokenType: "pay", Outcome: "refused", Code: "token_depleted"}, true},
		{with(middleware.EventReplayed, ""), eventmetrics.Class{Family: eventmetrics.FamilyRequests,
			Route: "report", TokenType: "pay", Outcome: "replayed"}, true},
		{with(middleware.EventPaid, ""), eventmetrics.Class{Family: eventmetrics.FamilyCharges,
			Route: "report", TokenType: "pay", Outcome: "paid", AddsUSD: true}, true},
		{with(middleware.EventMismatch, kyapay.CodeChargeMismatch), eventmetrics.Class{Family: eventmetrics.FamilyCharges,
			Route: "report", TokenType: "pay", Outcome: "mismatch", Code: "charge_mismatch", AddsUSD: true}, true},
		{with(middleware.EventDeclined, kyapay.CodeTokenDepleted), eventmetrics.Class{Family: eventmetrics.FamilyCharges,
			Route: "report", TokenType: "pay", Outcome: "declined", Code: "token_depleted"}, true},
		{with(middleware.EventNotSent, kyapay.CodeChargeUnavailable), eventmetrics.Class{Family: eventmetrics.FamilyCharges,
			Route: "report", TokenType: "pay", Outcome: "not_sent", Code: "charge_unavailable"}, true},
		{with(middleware.EventUnknown, kyapay.CodeChargeUnknown), eventmetrics.Class{Family: eventmetrics.FamilyCharges,
			Route: "report", TokenType: "pay", Outcome: "unknown", Code: "charge_unknown", Pending: 1}, true},
		{with(middleware.EventReconciled, ""), eventmetrics.Class{Family: eventmetrics.FamilyReconciled,
			Route: "report", TokenType: "pay", Outcome: "charged", AddsUSD: true, Pending: -1}, true},
		{with(middleware.EventReconciled, kyapay.CodeChargeDeclined), eventmetrics.Class{Family: eventmetrics.FamilyReconciled,
			Route: "report", TokenType: "pay", Outcome: "not_charged", Pending: -1}, true},
		{with(middleware.EventKeysRefreshed, ""), eventmetrics.Class{Family: eventmetrics.FamilyKeyRefreshes,
			Outcome: "ok", Issuer: "https://a.example"}, true},
		{with(middleware.EventKeysRefreshFailed, ""), eventmetrics.Class{Family: eventmetrics.FamilyKeyRefreshes,
			Outcome: "error", Issuer: "https://a.example"}, true},
		{with(middleware.EventKeyUnknown, ""), eventmetrics.Class{Family: eventmetrics.FamilyKeyUnknown,
			Issuer: "https://a.example"}, true},
		{with(middleware.EventChargeStarted, ""), eventmetrics.Class{}, false},
		{with(0, ""), eventmetrics.Class{}, false},
		{with(200, ""), eventmetrics.Class{}, false},
	}
	for _, tt := range tests {
		got, ok := eventmetrics.Classify(tt.e)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Classify(%s, code %q) = %+v, %v; want %+v, %v", tt.e.Kind, tt.e.Code, got, ok, tt.want, tt.ok)
		}
		for _, v := range []string{got.Route, got.TokenType, got.Outcome, got.Code, got.Issuer} {
			for _, secret := range []string{base.JTI, base.Subject, base.Path} {
				if v == secret {
					t.Errorf("Classify(%s) has label value %q", tt.e.Kind, v)
				}
			}
		}
	}
	// A refused request before verification has the token type "none".
	c, _ := eventmetrics.Classify(middleware.Event{Kind: middleware.EventRefused, Route: "r", Code: kyapay.CodeTokenMissing})
	if c.TokenType != "none" || c.Code != "token_missing" {
		t.Errorf("refusal without a token: %+v; want token type none, code token_missing", c)
	}
}

// Label values are valid UTF-8 whatever the event carries: Prometheus
// vectors panic on anything else.
func TestClassifyInvalidUTF8(t *testing.T) {
	t.Parallel()
	c, _ := eventmetrics.Classify(middleware.Event{Kind: middleware.EventRefused, Route: "r\xff", Code: "c\xfe"})
	if c.Route != "r\uFFFD" || c.Code != "c\uFFFD" {
		t.Errorf("route %q, code %q; want r\\uFFFD, c\\uFFFD", c.Route, c.Code)
	}
	c, _ = eventmetrics.Classify(middleware.Event{Kind: middleware.EventKeyUnknown, Issuer: "\xffiss"})
	if c.Issuer != "\uFFFDiss" {
		t.Errorf("issuer %q; want \\uFFFDiss", c.Issuer)
	}
}

func TestFamilyString(t *testing.T) {
	t.Parallel()
	for f, want := range map[eventmetrics.Family]string{
		eventmetrics.FamilyNone: "none", eventmetrics.FamilyRequests: "requests", eventmetrics.FamilyCharges: "charges",
		eventmetrics.FamilyReconciled: "reconciled", eventmetrics.FamilyKeyRefreshes: "key_refreshes",
		eventmetrics.FamilyKeyUnknown: "key_unknown", 99: "unknown_family",
	} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q; want %q", f, got, want)
		}
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	c := eventmetrics.NewConfig()
	if !slices.Equal(c.ChargeBuckets, eventmetrics.DefaultChargeBuckets) || c.Now == nil ||
		c.MaxIssuers != eventmetrics.DefaultMaxIssuers {
		t.Errorf("defaults: %+v", c)
	}

	at := time.Unix(1_800_000_000, 0)
	b := []float64{1, 2}
	c = eventmetrics.NewConfig(eventmetrics.WithChargeBuckets(b), eventmetrics.WithClock(func() time.Time { return at }),
		eventmetrics.WithMaxIssuers(3), nil)
	b[0] = 9 // the option copied the slice
	if !slices.Equal(c.ChargeBuckets, []float64{1, 2}) || !c.Now().Equal(at) || c.MaxIssuers != 3 {
		t.Errorf("with options: buckets %v, now %v, max %d", c.ChargeBuckets, c.Now(), c.MaxIssuers)
	}

	// A nil clock is time.Now, and the cap is at least one issuer.
	c = eventmetrics.NewConfig(eventmetrics.WithClock(nil), eventmetrics.WithMaxIssuers(-5))
	if c.Now == nil || c.MaxIssuers != 1 {
		t.Errorf("normalised: now nil %v, max %d; want a clock and 1", c.Now == nil, c.MaxIssuers)
	}
	// Later options win.
	c = eventmetrics.NewConfig(eventmetrics.WithMaxIssuers(2), eventmetrics.WithMaxIssuers(5))
	if c.MaxIssuers != 5 {
		t.Errorf("max issuers %d; want the last option's 5", c.MaxIssuers)
	}
}

// usdTotals returns a Recorder's USD totals keyed "route/type", as the
// shortest decimal that reads back as the reported float64.
func usdTotals(r *eventmetrics.Recorder) map[string]string {
	out := map[string]string{}
	r.RangeUSD(func(route, tokenType string, usd float64) {
		out[route+"/"+tokenType] = strconv.FormatFloat(usd, 'g', -1, 64)
	})
	return out
}

func TestRecorderUSDExact(t *testing.T) {
	t.Parallel()
	r := eventmetrics.NewRecorder(eventmetrics.NewConfig())
	for _, e := range []middleware.Event{
		{Kind: middleware.EventPaid, Route: "report", TokenType: kyapay.TypePay, Amount: kyapay.MustParseAmount("0.1")},
		{Kind: middleware.EventPaid, Route: "report", TokenType: kyapay.TypePay, Amount: kyapay.MustParseAmount("0.2")},
		// An over- or under-charge counts at what was charged.
		{Kind: middleware.EventMismatch, Route: "report", TokenType: kyapay.TypePay, Amount: kyapay.MustParseAmount("0.05"),
			Price: kyapay.MustParseAmount("0.1"), HasPrice: true},
		// Found charged on reconciliation: counted; found not charged: not.
		{Kind: middleware.EventReconciled, Route: "report", TokenType: kyapay.TypeKYAPay, Amount: kyapay.MustParseAmount("0.7")},
		{Kind: middleware.EventReconciled, Route: "report", TokenType: kyapay.TypeKYAPay, Amount: kyapay.MustParseAmount("5"),
			Code: kyapay.CodeChargeDeclined},
		// Nothing charged on these.
		{Kind: middleware.EventDeclined, Route: "report", TokenType: kyapay.TypePay, Amount: kyapay.MustParseAmount("5")},
		{Kind: middleware.EventUnknown, Route: "report", TokenType: kyapay.TypePay, Amount: kyapay.MustParseAmount("5")},
		{Kind: middleware.EventPaid, Route: "free", TokenType: kyapay.TypePay},
	} {
		r.Record(e)
	}
	want := map[string]string{"report/pay": "0.35", "report/kya-pay": "0.7"}
	if got := usdTotals(r); !maps.Equal(got, want) {
		t.Errorf("USD totals %v; want %v", got, want)
	}
	// The same amounts added as float64 do not print as 0.35, so the
	// total above proves the sum is exact.
	naive := 0.0
	for _, f := range []float64{0.1, 0.2, 0.05} {
		naive += f
	}
	if s := strconv.FormatFloat(naive, 'g', -1, 64); s == "0.35" {
		t.Fatalf("float64 sum prints %s; the amounts no longer test exactness", s)
	}
}

func TestUSDValue(t *testing.T) {
	t.Parallel()
	for micros, want := range map[int64]string{
		0: "0", 1: "0.000001", 300_000: "0.3", 100_001_000_000: "100001", 999_999_999_999_999: "999999999.999999",
		-50_000: "-0.05",
	} {
		if got := strconv.FormatFloat(eventmetrics.USDValue(micros), 'f', -1, 64); got != want {
			t.Errorf("USDValue(%d) prints %s; want %s", micros, got, want)
		}
	}
}

// Concurrent charges: the USD total is exact and the pending count
// matches the unknown charges minus their reconciliations, whatever the
// interleaving.
func TestRecorderConcurrent(t *testing.T) {
	t.Parallel()
	r := eventmetrics.NewRecorder(eventmetrics.NewConfig())
	const workers, each = 8, 250
	types := [2]kyapay.TokenType{kyapay.TypePay, kyapay.TypeKYAPay}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tt := types[w%2]
			for i := range each {
				r.Record(middleware.Event{Kind: middleware.EventPaid, Route: "report", TokenType: tt, Amount: kyapay.MustParseAmount("0.000001")})
				r.Record(middleware.Event{Kind: middleware.EventPaid, Route: "report", TokenType: tt, Amount: kyapay.MustParseAmount("0.1")})
				r.Record(middleware.Event{Kind: middleware.EventUnknown, Route: "report", TokenType: tt})
				if i%5 != 0 {
					r.Record(middleware.Event{Kind: middleware.EventReconciled, Route: "report", TokenType: tt, Code: kyapay.CodeChargeDeclined})
				}
			}
		})
	}
	wg.Wait()
	// Per token type: 4 workers * 250 * (0.000001 + 0.1) = 100.001 USD.
	want := map[string]string{"report/pay": "100.001", "report/kya-pay": "100.001"}
	if got := usdTotals(r); !maps.Equal(got, want) {
		t.Errorf("USD totals %v; want %v", got, want)
	}
	// Each worker reconciles 200 of its 250 unknown charges, each after
	// the charge itself, so the count never floors at zero.
	if got := r.Pending(); got != workers*50 {
		t.Errorf("pending %d; want %d", got, workers*50)
	}
}

func TestRecorderPendingNeverNegative(t *testing.T) {
	t.Parallel()
	r := eventmetrics.NewRecorder(eventmetrics.NewConfig())
	// Reconciliations of charges made before a restart count for nothing.
	r.Record(middleware.Event{Kind: middleware.EventReconciled, Route: "report"})
	r.Record(middleware.Event{Kind: middleware.EventReconciled, Route: "report", Code: kyapay.CodeChargeDeclined})
	if got := r.Pending(); got != 0 {
		t.Fatalf("pending %d after reconciliations alone; want 0", got)
	}
	r.Record(middleware.Event{Kind: middleware.EventUnknown, Route: "report"})
	r.Record(middleware.Event{Kind: middleware.EventUnknown, Route: "report"})
	r.Record(middleware.Event{Kind: middleware.EventReconciled, Route: "report"})
	if got := r.Pending(); got != 1 {
		t.Errorf("pending %d; want 1", got)
	}
}

// issuerRows returns RangeIssuers' rows keyed by issuer.
func issuerRows(r *eventmetrics.Recorder) map[string]string {
	out := map[string]string{}
	r.RangeIssuers(func(iss string, last time.Time, keys int) {
		out[iss] = fmt.Sprintf("%d keys at %d", keys, last.Unix())
	})
	return out
}

func TestRecorderIssuers(t *testing.T) {
	t.Parallel()
	clock := new(sellertest.Clock)
	clock.Advance(1_800_000_000 * time.Second)
	r := eventmetrics.NewRecorder(eventmetrics.NewConfig(eventmetrics.WithClock(clock.Now), eventmetrics.WithMaxIssuers(2)))
	a, b, c, d := "https://a.example", "https://b.example", "https://c.example", "https://d.example"
	record := func(k middleware.EventKind, iss string, keys int) eventmetrics.Class {
		t.Helper()
		cl, ok := r.Record(middleware.Event{Kind: k, Issuer: iss, Keys: keys})
		if !ok {
			t.Fatalf("Record(%s) not recorded", k)
		}
		return cl
	}

	cl := record(middleware.EventKeysRefreshed, a, 2)
	if cl.Issuer != a || !cl.RefreshedAt.Equal(clock.Now()) {
		t.Errorf("first refresh: %+v; want issuer %s at %v", cl, a, clock.Now())
	}
	clock.Advance(300 * time.Second)
	if cl := record(middleware.EventKeysRefreshFailed, a, 0); cl.Issuer != a || !cl.RefreshedAt.IsZero() {
		t.Errorf("failed refresh: %+v; want issuer %s, no refresh time", cl, a)
	}
	// A key-unknown event is the second distinct issuer: it takes a slot
	// without a refresh.
	if cl := record(middleware.EventKeyUnknown, b, 0); cl.Issuer != b {
		t.Errorf("key unknown: issuer %q; want %s", cl.Issuer, b)
	}
	// The cap is reached: further issuers are "other", known ones stay.
	if cl := record(middleware.EventKeysRefreshed, c, 4); cl.Issuer != eventmetrics.OtherIssuer || cl.RefreshedAt.IsZero() {
		t.Errorf("third issuer: %+v; want other with a refresh time", cl)
	}
	clock.Advance(60 * time.Second)
	if cl := record(middleware.EventKeysRefreshed, d, 5); cl.Issuer != eventmetrics.OtherIssuer {
		t.Errorf("fourth issuer: %q; want other", cl.Issuer)
	}
	if cl := record(middleware.EventKeyUnknown, b, 0); cl.Issuer != b {
		t.Errorf("known issuer after the cap: %q; want %s", cl.Issuer, b)
	}

	// Only issuers with a successful fetch are listed; "other" holds the
	// last fetch of any issuer beyond the cap.
	want := map[string]string{a: "2 keys at 1800000000", eventmetrics.OtherIssuer: "5 keys at 1800000360"}
	if got := issuerRows(r); !maps.Equal(got, want) {
		t.Errorf("issuers %v; want %v", got, want)
	}

	// RangeIssuers' callback may call the Recorder.
	r.RangeIssuers(func(string, time.Time, int) { r.Record(middleware.Event{Kind: middleware.EventKeyUnknown, Issuer: a}) })
}

// However many distinct issuers arrive concurrently, at most MaxIssuers
// of them keep their own value, and every other event reads "other".
func TestRecorderIssuerCapConcurrent(t *testing.T) {
	t.Parallel()
	const maxIssuers, workers, each = 5, 8, 50
	r := eventmetrics.NewRecorder(eventmetrics.NewConfig(eventmetrics.WithMaxIssuers(maxIssuers)))
	var mu sync.Mutex
	own := map[string]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				iss := fmt.Sprintf("https://%d-%d.example", w, i)
				c, _ := r.Record(middleware.Event{Kind: middleware.EventKeysRefreshed, Issuer: iss, Keys: 1})
				switch c.Issuer {
				case eventmetrics.OtherIssuer:
				case iss:
					mu.Lock()
					own[iss] = true
					mu.Unlock()
				default:
					t.Errorf("issuer %s reported as %s", iss, c.Issuer)
				}
			}
		})
	}
	wg.Wait()
	if len(own) != maxIssuers {
		t.Errorf("%d issuers kept their value; want %d", len(own), maxIssuers)
	}
	rows := issuerRows(r)
	if len(rows) != maxIssuers+1 {
		t.Errorf("%d issuer rows; want %d plus other: %v", len(rows), maxIssuers, rows)
	}
	for iss := range own {
		if _, ok := rows[iss]; !ok {
			t.Errorf("issuer %s missing from RangeIssuers", iss)
		}
	}
}

// Events that feed no metric change nothing.
func TestRecorderIgnores(t *testing.T) {
	t.Parallel()
	r := eventmetrics.NewRecorder(eventmetrics.Config{})
	for _, k := range []middleware.EventKind{middleware.EventChargeStarted, 0, 200} {
		if c, ok := r.Record(middleware.Event{Kind: k, Route: "report", Issuer: "https://a.example",
			Amount: kyapay.MustParseAmount("1")}); ok || c != (eventmetrics.Class{}) {
			t.Errorf("Record(%s) = %+v, %v; want nothing", k, c, ok)
		}
	}
	if got := usdTotals(r); len(got) != 0 || r.Pending() != 0 || len(issuerRows(r)) != 0 {
		t.Errorf("state changed: usd %v pending %d issuers %v", got, r.Pending(), issuerRows(r))
	}
	// A zero Config works: a real clock and a cap of one issuer.
	r.Record(middleware.Event{Kind: middleware.EventKeysRefreshed, Issuer: "https://a.example", Keys: 1})
	c, _ := r.Record(middleware.Event{Kind: middleware.EventKeysRefreshed, Issuer: "https://b.example", Keys: 1})
	if c.Issuer != eventmetrics.OtherIssuer || c.RefreshedAt.IsZero() {
		t.Errorf("zero Config, second issuer: %+v; want other with a refresh time", c)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(uint8(middleware.EventRefused), "report", "token_missing", "https://a.example", uint8(kyapay.TypePay))
	f.Add(uint8(middleware.EventKeyUnknown), "r\xff", "c\xfe", "\xff", uint8(0))
	f.Add(uint8(middleware.EventReconciled), "", "", "", uint8(7))
	f.Fuzz(func(t *testing.T, kind uint8, route, code, issuer string, tokenType uint8) {
		e := middleware.Event{Kind: middleware.EventKind(kind), Route: route, Code: kyapay.Code(code), Issuer: issuer,
			TokenType: kyapay.TokenType(tokenType)}
		c, ok := eventmetrics.Classify(e)
		if ok != (c.Family != eventmetrics.FamilyNone) {
			t.Fatalf("ok %v with family %s", ok, c.Family)
		}
		for _, v := range []string{c.Route, c.TokenType, c.Outcome, c.Code, c.Issuer} {
			if !utf8.ValidString(v) {
				t.Fatalf("label value %q is not valid UTF-8", v)
			}
		}
		// Valid input passes through unchanged.
		if ok && utf8.ValidString(route) && c.Family != eventmetrics.FamilyKeyRefreshes &&
			c.Family != eventmetrics.FamilyKeyUnknown && c.Route != route {
			t.Fatalf("route %q became %q", route, c.Route)
		}
		if c.Pending < -1 || c.Pending > 1 {
			t.Fatalf("pending %d", c.Pending)
		}
	})
}
