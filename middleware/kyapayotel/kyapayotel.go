package kyapayotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/eventmetrics"
)

// ScopeName is the instrumentation scope of the Meter and Tracer this
// package obtains from the providers it is given.
const ScopeName = "github.com/kyapay/kyapay-go/middleware/kyapayotel"

// Metric names, in OpenTelemetry style: dot-separated under the kyapay
// namespace, no unit or "total" suffix (the unit is the instrument's).
const (
	// MetricRequests counts gate decisions (unit {request}), with
	// kyapay.route, kyapay.token.type, kyapay.outcome ("verified",
	// "refused" or "replayed") and, when refused, kyapay.code. A request
	// whose token verified and whose charge then failed counts as verified
	// and as refused.
	MetricRequests = "kyapay.requests"
	// MetricCharges counts charge calls (unit {charge}), with kyapay.route,
	// kyapay.token.type, kyapay.outcome ("paid", "mismatch", "declined",
	// "not_sent" or "unknown") and kyapay.code, the refusal code the outcome
	// led to, if any.
	MetricCharges = "kyapay.charges"
	// MetricChargeDuration is the charge call latency histogram (unit s),
	// with kyapay.route and kyapay.outcome.
	MetricChargeDuration = "kyapay.charge.duration"
	// MetricCharged is the USD charged (unit USD, an observable counter),
	// with kyapay.route and kyapay.token.type. It is kept in integer
	// micro-dollars and reported as the float64 nearest to the exact sum.
	MetricCharged = "kyapay.charged"
	// MetricUnknownPending is the number of charges whose outcome is
	// unknown and not yet reconciled (unit {charge}, an observable
	// up-down counter, never below zero).
	MetricUnknownPending = "kyapay.charges.unknown_pending"
	// MetricReconciled counts unknown charges resolved (unit {charge}), with
	// kyapay.route and kyapay.outcome ("charged" or "not_charged").
	MetricReconciled = "kyapay.charges.reconciled"
	// MetricJWKSRefreshes counts fetches of an issuer's key set (unit
	// {refresh}), with kyapay.issuer and kyapay.outcome ("ok" or "error").
	MetricJWKSRefreshes = "kyapay.jwks.refreshes"
	// MetricJWKSAge is the time since the last successful fetch of an
	// issuer's key set (unit s, an observable gauge), with kyapay.issuer:
	// the age of the keys in use.
	MetricJWKSAge = "kyapay.jwks.age"
	// MetricJWKSKeys is the number of usable keys in an issuer's last
	// fetched key set (unit {key}, an observable gauge), with kyapay.issuer.
	MetricJWKSKeys = "kyapay.jwks.keys"
	// MetricJWKSKeyUnknown counts tokens signed with a key their issuer does
	// not publish (unit {token}), with kyapay.issuer.
	MetricJWKSKeyUnknown = "kyapay.jwks.key_unknown"
)

// Attribute keys of the metrics and spans. No attribute ever carries a
// jti, a subject, an email or a token.
const (
	// AttrRoute is the requirement's name or the HTTP mux pattern.
	AttrRoute = attribute.Key("kyapay.route")
	// AttrTokenType is "kya", "pay", "kya-pay" or "none" (refused before
	// the token was verified).
	AttrTokenType = attribute.Key("kyapay.token.type")
	// AttrOutcome is the outcome of a decision, a charge or a key fetch.
	AttrOutcome = attribute.Key("kyapay.outcome")
	// AttrCode is the stable refusal code ("token_missing",
	// "token_depleted", ...).
	AttrCode = attribute.Key("kyapay.code")
	// AttrIssuer is a token issuer from the Verifier's configuration.
	AttrIssuer = attribute.Key("kyapay.issuer")
	// AttrAmount is the amount a charge asked for, as an exact decimal
	// string ("0.01"); absent on service-price charges.
	AttrAmount = attribute.Key("kyapay.amount")
	// AttrServicePrice is true on a charge of the service's price.
	AttrServicePrice = attribute.Key("kyapay.service_price")
	// AttrAmountCharged is the amount Skyfire charged, as an exact decimal
	// string.
	AttrAmountCharged = attribute.Key("kyapay.amount.charged")
	// AttrBalanceRemaining is the balance Skyfire reported after a charge,
	// as an exact decimal string.
	AttrBalanceRemaining = attribute.Key("kyapay.balance.remaining")
	// AttrChargeReason is why a charge failed ("insufficient_balance",
	// "transport", ...).
	AttrChargeReason = attribute.Key("kyapay.charge.reason")
)

// DefaultChargeBuckets are the charge latency histogram's bucket
// boundaries, in seconds: from 5 ms to the middleware's default 15 s charge
// timeout. They are advice to the SDK, which a View may override. They are
// [eventmetrics.DefaultChargeBuckets].
var DefaultChargeBuckets = eventmetrics.DefaultChargeBuckets

// Option adjusts [New]. It is the option type of every metric adapter of
// the middleware.
type Option = eventmetrics.Option

// WithChargeBuckets sets the charge latency histogram's bucket boundaries,
// in seconds. Default: [DefaultChargeBuckets].
func WithChargeBuckets(b []float64) Option { return eventmetrics.WithChargeBuckets(b) }

// WithClock sets the clock that dates key fetches for [MetricJWKSAge].
// Default: time.Now.
func WithClock(now func() time.Time) Option { return eventmetrics.WithClock(now) }

// WithMaxIssuers bounds how many distinct kyapay.issuer values the key
// metrics use; events about further issuers are reported as "other".
// Default: 16.
func WithMaxIssuers(n int) Option { return eventmetrics.WithMaxIssuers(n) }

// Observer turns middleware events into OpenTelemetry metrics, and adds
// each event to the request's span when that span is recording. Install it
// as [middleware.Config.Observer]. It is safe for concurrent use; one
// Observer may serve several Middlewares, whose figures then add up.
type Observer struct {
	requests   metric.Int64Counter
	charges    metric.Int64Counter
	duration   metric.Float64Histogram
	reconciled metric.Int64Counter
	refreshes  metric.Int64Counter
	keyUnknown metric.Int64Counter

	charged    metric.Float64ObservableCounter
	pendingObs metric.Int64ObservableUpDownCounter
	age        metric.Float64ObservableGauge
	keys       metric.Int64ObservableGauge

	// opts maps an attrKey to its *measureOpts, built once: the attribute
	// values are bounded (route, token type, outcome, code, issuer), and a
	// cached option makes a measurement allocate nothing.
	opts sync.Map
	// rec classifies events and keeps the exact USD sums, the pending
	// count and the issuers' key state.
	rec *eventmetrics.Recorder
	now func() time.Time
}

// New creates an Observer whose instruments come from mp's Meter named
// [ScopeName]. A nil mp means the global MeterProvider
// (otel.GetMeterProvider), which does nothing until the application
// installs an SDK.
func New(mp metric.MeterProvider, opts ...Option) (*Observer, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	cfg := eventmetrics.NewConfig(opts...)
	m := mp.Meter(ScopeName)
	o := &Observer{rec: eventmetrics.NewRecorder(cfg), now: cfg.Now}
	var err, e error
	o.requests, e = m.Int64Counter(MetricRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Gate decisions on requests: verified, refused (with the refusal code) or replayed."))
	err = errors.Join(err, e)
	o.charges, e = m.Int64Counter(MetricCharges, metric.WithUnit("{charge}"),
		metric.WithDescription("Charge calls by outcome: paid, mismatch, declined, not_sent or unknown."))
	err = errors.Join(err, e)
	o.duration, e = m.Float64Histogram(MetricChargeDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of charge calls, retries included."),
		metric.WithExplicitBucketBoundaries(cfg.ChargeBuckets...))
	err = errors.Join(err, e)
	o.reconciled, e = m.Int64Counter(MetricReconciled, metric.WithUnit("{charge}"),
		metric.WithDescription("Charges of unknown outcome that were resolved: charged or not_charged."))
	err = errors.Join(err, e)
	o.refreshes, e = m.Int64Counter(MetricJWKSRefreshes, metric.WithUnit("{refresh}"),
		metric.WithDescription("Fetches of an issuer's signing keys: ok or error."))
	err = errors.Join(err, e)
	o.keyUnknown, e = m.Int64Counter(MetricJWKSKeyUnknown, metric.WithUnit("{token}"),
		metric.WithDescription("Tokens signed with a key their issuer does not publish."))
	err = errors.Join(err, e)
	o.charged, e = m.Float64ObservableCounter(MetricCharged, metric.WithUnit("USD"),
		metric.WithDescription("USD charged: confirmed charges (including mismatched amounts) and unknown charges reconciled as charged."))
	err = errors.Join(err, e)
	o.pendingObs, e = m.Int64ObservableUpDownCounter(MetricUnknownPending, metric.WithUnit("{charge}"),
		metric.WithDescription("Charges whose outcome is unknown and not yet reconciled."))
	err = errors.Join(err, e)
	o.age, e = m.Float64ObservableGauge(MetricJWKSAge, metric.WithUnit("s"),
		metric.WithDescription("Time since the last successful fetch of an issuer's signing keys."))
	err = errors.Join(err, e)
	o.keys, e = m.Int64ObservableGauge(MetricJWKSKeys, metric.WithUnit("{key}"),
		metric.WithDescription("Usable signing keys in an issuer's last fetched key set."))
	err = errors.Join(err, e)
	if err != nil {
		return nil, fmt.Errorf("kyapayotel: creating instruments: %w", err)
	}
	if _, err := m.RegisterCallback(o.observe, o.charged, o.pendingObs, o.age, o.keys); err != nil {
		return nil, fmt.Errorf("kyapayotel: registering callback: %w", err)
	}
	return o, nil
}

// observe reports the observable instruments.
func (o *Observer) observe(_ context.Context, ob metric.Observer) error {
	o.rec.RangeUSD(func(route, tokenType string, usd float64) {
		ob.ObserveFloat64(o.charged, usd, metric.WithAttributes(AttrRoute.String(route), AttrTokenType.String(tokenType)))
	})
	ob.ObserveInt64(o.pendingObs, o.rec.Pending())
	now := o.now()
	o.rec.RangeIssuers(func(iss string, lastOK time.Time, keys int) {
		attrs := metric.WithAttributes(AttrIssuer.String(iss))
		ob.ObserveFloat64(o.age, max(now.Sub(lastOK).Seconds(), 0), attrs)
		ob.ObserveInt64(o.keys, int64(keys), attrs)
	})
	return nil
}

// Observe records one event, and adds it to the span in ctx when that
// span is recording. Unknown kinds are ignored.
func (o *Observer) Observe(ctx context.Context, e middleware.Event) {
	c, ok := o.rec.Record(e)
	if !ok {
		return
	}
	switch c.Family {
	case eventmetrics.FamilyRequests:
		o.requests.Add(ctx, 1, o.attrs(layoutFull, c).add...)
	case eventmetrics.FamilyCharges:
		o.charges.Add(ctx, 1, o.attrs(layoutFull, c).add...)
		o.duration.Record(ctx, e.Duration.Seconds(), o.attrs(layoutRouteOutcome, c).rec...)
	case eventmetrics.FamilyReconciled:
		o.reconciled.Add(ctx, 1, o.attrs(layoutRouteOutcome, c).add...)
	case eventmetrics.FamilyKeyRefreshes:
		o.refreshes.Add(ctx, 1, o.attrs(layoutIssuer, c).add...)
	case eventmetrics.FamilyKeyUnknown:
		o.keyUnknown.Add(ctx, 1, o.attrs(layoutIssuer, c).add...)
	}
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.AddEvent("kyapay."+e.Kind.String(), trace.WithAttributes(spanEventAttrs(e)...))
	}
}

// spanEventAttrs are the attributes of an event added to a span.
func spanEventAttrs(e middleware.Event) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 4)
	if e.Route != "" {
		attrs = append(attrs, AttrRoute.String(e.Route))
	}
	if e.TokenType != 0 {
		attrs = append(attrs, AttrTokenType.String(e.TokenType.String()))
	}
	if e.Code != "" {
		attrs = append(attrs, AttrCode.String(string(e.Code)))
	}
	switch e.Kind {
	case middleware.EventPaid, middleware.EventMismatch:
		attrs = append(attrs, AttrAmountCharged.String(e.Amount.String()))
	}
	return attrs
}

// Attribute layouts of the instruments.
const (
	// layoutFull: kyapay.route, kyapay.token.type, kyapay.outcome and,
	// when not empty, kyapay.code.
	layoutFull uint8 = iota
	// layoutRouteOutcome: kyapay.route, kyapay.outcome.
	layoutRouteOutcome
	// layoutIssuer: kyapay.issuer and, when not empty, kyapay.outcome.
	layoutIssuer
)

// attrKey identifies one attribute set: a layout and its values.
type attrKey struct {
	layout                         uint8
	name, tokenType, outcome, code string
}

// measureOpts are the options that attach one attribute set to a
// measurement.
type measureOpts struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

// attrs returns the cached options of c's values in layout, building them
// the first time.
func (o *Observer) attrs(layout uint8, c eventmetrics.Class) *measureOpts {
	k := attrKey{layout: layout, outcome: c.Outcome}
	switch layout {
	case layoutFull:
		k.name, k.tokenType, k.code = c.Route, c.TokenType, c.Code
	case layoutRouteOutcome:
		k.name = c.Route
	case layoutIssuer:
		k.name = c.Issuer
	}
	if v, ok := o.opts.Load(k); ok {
		return v.(*measureOpts)
	}
	var kv []attribute.KeyValue
	switch k.layout {
	case layoutFull:
		kv = append(kv, AttrRoute.String(k.name), AttrTokenType.String(k.tokenType), AttrOutcome.String(k.outcome))
		if k.code != "" {
			kv = append(kv, AttrCode.String(k.code))
		}
	case layoutRouteOutcome:
		kv = append(kv, AttrRoute.String(k.name), AttrOutcome.String(k.outcome))
	case layoutIssuer:
		kv = append(kv, AttrIssuer.String(k.name))
		if k.outcome != "" {
			kv = append(kv, AttrOutcome.String(k.outcome))
		}
	}
	opt := metric.WithAttributeSet(attribute.NewSet(kv...))
	v, _ := o.opts.LoadOrStore(k, &measureOpts{add: []metric.AddOption{opt}, rec: []metric.RecordOption{opt}})
	return v.(*measureOpts)
}
