package kyapayprom

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/eventmetrics"
)

// Metric names. Every name starts with "kyapay_", counters end in
// "_total", and durations and timestamps are in seconds. The label names are
// route, token_type, outcome, code and issuer, and nothing else: no label
// ever carries a jti, a subject, an email or a token.
const (
	// MetricRequests counts gate decisions {route, token_type, outcome, code}:
	// outcome "verified" (the token met the route's requirement), "refused"
	// (code is the refusal code) or "replayed". A request whose token
	// verified and whose charge then failed counts as verified and as
	// refused.
	MetricRequests = "kyapay_requests_total"
	// MetricCharges counts charge calls {route, token_type, outcome, code}:
	// outcome "paid", "mismatch", "declined", "not_sent" or "unknown"; code
	// is the refusal code the outcome led to ("" for paid).
	MetricCharges = "kyapay_charges_total"
	// MetricChargeDuration is the charge call latency histogram {route,
	// outcome}, in seconds, retries included.
	MetricChargeDuration = "kyapay_charge_duration_seconds"
	// MetricChargedUSD is the USD charged {route, token_type}, exact to the
	// micro-dollar in the text exposition.
	MetricChargedUSD = "kyapay_charged_usd_total"
	// MetricUnknownPending is the number of charges whose outcome is unknown
	// and not yet reconciled (a gauge without labels).
	MetricUnknownPending = "kyapay_charges_unknown_pending"
	// MetricReconciled counts unknown charges resolved {route, outcome}:
	// outcome "charged" or "not_charged".
	MetricReconciled = "kyapay_charges_reconciled_total"
	// MetricJWKSRefreshes counts key set fetches {issuer, outcome}: outcome
	// "ok" or "error".
	MetricJWKSRefreshes = "kyapay_jwks_refreshes_total"
	// MetricJWKSLastRefresh is the Unix time of the last successful key set
	// fetch {issuer}: time() minus it is the age of the keys in use.
	MetricJWKSLastRefresh = "kyapay_jwks_last_refresh_timestamp_seconds"
	// MetricJWKSKeys is the number of usable keys in the last fetched key
	// set {issuer}.
	MetricJWKSKeys = "kyapay_jwks_keys"
	// MetricJWKSKeyUnknown counts tokens signed with a key their issuer does
	// not publish {issuer}.
	MetricJWKSKeyUnknown = "kyapay_jwks_key_unknown_total"
)

const (
	labelRoute   = "route"
	labelType    = "token_type"
	labelOutcome = "outcome"
	labelCode    = "code"
	labelIssuer  = "issuer"
)

// DefaultChargeBuckets are the charge latency histogram's buckets, in
// seconds: from 5 ms to the middleware's default 15 s charge timeout. They
// are [eventmetrics.DefaultChargeBuckets].
var DefaultChargeBuckets = eventmetrics.DefaultChargeBuckets

// Option adjusts [New]. It is the option type of every metric adapter of
// the middleware.
type Option = eventmetrics.Option

// WithChargeBuckets sets the upper bounds, in seconds, of the charge
// latency histogram's buckets. Default: [DefaultChargeBuckets].
func WithChargeBuckets(b []float64) Option { return eventmetrics.WithChargeBuckets(b) }

// WithClock sets the clock that stamps successful key refreshes
// (kyapay_jwks_last_refresh_timestamp_seconds). Default: time.Now.
func WithClock(now func() time.Time) Option { return eventmetrics.WithClock(now) }

// WithMaxIssuers bounds how many distinct issuer label values the key
// metrics use; events about further issuers are counted under
// issuer="other". Issuers come from the Verifier's configuration, so the
// bound only guards against a misconfiguration. Default: 16.
func WithMaxIssuers(n int) Option { return eventmetrics.WithMaxIssuers(n) }

// Observer turns middleware events into Prometheus metrics. Install it as
// [middleware.Config.Observer]. It is safe for concurrent use, and Observe
// never blocks: it updates counters in memory, and the registry reads them
// when scraped.
type Observer struct {
	requests   *prometheus.CounterVec
	charges    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	reconciled *prometheus.CounterVec
	refreshes  *prometheus.CounterVec
	lastOK     *prometheus.GaugeVec
	keys       *prometheus.GaugeVec
	keyUnknown *prometheus.CounterVec

	usdDesc     *prometheus.Desc
	pendingDesc *prometheus.Desc
	// rec classifies events and keeps the exact USD sums, the pending
	// count and the issuer cap.
	rec *eventmetrics.Recorder
}

// New creates an Observer and registers its metrics on reg, which must
// not be nil: a library never registers on the global default registry,
// so pass the registry you serve (prometheus.NewRegistry(), or
// prometheus.DefaultRegisterer if that is what your /metrics serves). To
// tell two Middlewares apart, wrap reg with prometheus.WrapRegistererWith
// and a constant label. New fails when a metric of the same name is
// already registered on reg; nothing is registered then.
func New(reg prometheus.Registerer, opts ...Option) (*Observer, error) {
	if reg == nil {
		return nil, errors.New("kyapayprom: nil Registerer (pass the registry your /metrics page serves)")
	}
	cfg := eventmetrics.NewConfig(opts...)
	o := &Observer{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "Gate decisions on requests, by outcome: verified (the token met the route's requirement), refused (with the refusal code), replayed (answered from a stored response). A request refused after its token verified (its charge failed) counts as verified and as refused.",
		}, []string{labelRoute, labelType, labelOutcome, labelCode}),
		charges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricCharges,
			Help: "Charge calls by outcome: paid, mismatch (charged a different amount than the price), declined, not_sent (provably never reached Skyfire), unknown (to reconcile); code is the refusal code the outcome led to, if any.",
		}, []string{labelRoute, labelType, labelOutcome, labelCode}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricChargeDuration,
			Help:    "Duration of charge calls in seconds, retries included, by outcome.",
			Buckets: cfg.ChargeBuckets,
		}, []string{labelRoute, labelOutcome}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReconciled,
			Help: "Charges of unknown outcome that were resolved, by outcome: charged or not_charged.",
		}, []string{labelRoute, labelOutcome}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricJWKSRefreshes,
			Help: "Fetches of an issuer's signing keys, by outcome: ok or error (the last good keys stay in use).",
		}, []string{labelIssuer, labelOutcome}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricJWKSLastRefresh,
			Help: "Unix time of the last successful fetch of an issuer's signing keys; time() minus this is the age of the keys in use.",
		}, []string{labelIssuer}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricJWKSKeys,
			Help: "Number of usable signing keys in an issuer's last successfully fetched key set.",
		}, []string{labelIssuer}),
		keyUnknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricJWKSKeyUnknown,
			Help: "Tokens signed with a key their issuer does not publish.",
		}, []string{labelIssuer}),
		usdDesc: prometheus.NewDesc(MetricChargedUSD,
			"USD charged, exact to the micro-dollar: confirmed charges (including mismatched amounts) and unknown charges reconciled as charged.",
			[]string{labelRoute, labelType}, nil),
		pendingDesc: prometheus.NewDesc(MetricUnknownPending,
			"Charges whose outcome is unknown and not yet reconciled; each is logged at Error with the jti to reconcile.",
			nil, nil),
		rec: eventmetrics.NewRecorder(cfg),
	}
	if err := reg.Register(collector{o}); err != nil {
		return nil, fmt.Errorf("kyapayprom: registering metrics: %w", err)
	}
	return o, nil
}

// Observe records one event. Unknown kinds are ignored.
func (o *Observer) Observe(_ context.Context, e middleware.Event) {
	c, ok := o.rec.Record(e)
	if !ok {
		return
	}
	switch c.Family {
	case eventmetrics.FamilyRequests:
		o.requests.WithLabelValues(c.Route, c.TokenType, c.Outcome, c.Code).Inc()
	case eventmetrics.FamilyCharges:
		o.charges.WithLabelValues(c.Route, c.TokenType, c.Outcome, c.Code).Inc()
		o.duration.WithLabelValues(c.Route, c.Outcome).Observe(e.Duration.Seconds())
	case eventmetrics.FamilyReconciled:
		o.reconciled.WithLabelValues(c.Route, c.Outcome).Inc()
	case eventmetrics.FamilyKeyRefreshes:
		o.refreshes.WithLabelValues(c.Issuer, c.Outcome).Inc()
		if !c.RefreshedAt.IsZero() {
			o.lastOK.WithLabelValues(c.Issuer).Set(float64(c.RefreshedAt.UnixNano()) / 1e9)
			o.keys.WithLabelValues(c.Issuer).Set(float64(e.Keys))
		}
	case eventmetrics.FamilyKeyUnknown:
		o.keyUnknown.WithLabelValues(c.Issuer).Inc()
	}
}

// collector is the Observer as a prometheus.Collector, kept unexported so
// that the Observer's API is Observe alone.
type collector struct{ o *Observer }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	o := c.o
	o.requests.Describe(ch)
	o.charges.Describe(ch)
	o.duration.Describe(ch)
	o.reconciled.Describe(ch)
	o.refreshes.Describe(ch)
	o.lastOK.Describe(ch)
	o.keys.Describe(ch)
	o.keyUnknown.Describe(ch)
	ch <- o.usdDesc
	ch <- o.pendingDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	o := c.o
	o.requests.Collect(ch)
	o.charges.Collect(ch)
	o.duration.Collect(ch)
	o.reconciled.Collect(ch)
	o.refreshes.Collect(ch)
	o.lastOK.Collect(ch)
	o.keys.Collect(ch)
	o.keyUnknown.Collect(ch)
	o.rec.RangeUSD(func(route, tokenType string, usd float64) {
		ch <- prometheus.MustNewConstMetric(o.usdDesc, prometheus.CounterValue, usd, route, tokenType)
	})
	ch <- prometheus.MustNewConstMetric(o.pendingDesc, prometheus.GaugeValue, float64(o.rec.Pending()))
}
