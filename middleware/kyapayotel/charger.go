package kyapayotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// SpanCharge is the name of the span [WrapCharger] starts around each
// charge call.
const SpanCharge = "kyapay.charge"

// errorType is the OpenTelemetry semantic-convention attribute for the
// class of error an operation ended with.
const errorType = attribute.Key("error.type")

// WrapCharger returns a Charger that runs each call of c inside a span
// named "kyapay.charge" from tp's Tracer named [ScopeName]. A nil tp means
// the global TracerProvider (otel.GetTracerProvider).
//
// Install the result as [middleware.Config.Charger]. The span is the
// context of the inner call, so when the *charge.Client's HTTPClient uses
// otelhttp.NewTransport, each HTTP attempt (a retry of a request that
// provably never left is a second attempt) is a client span under it.
//
// The span carries the amount asked for ([AttrAmount], an exact decimal
// string, or [AttrServicePrice]) and the outcome ([AttrOutcome]: paid,
// mismatch, declined, not_sent or unknown); a confirmed charge adds
// [AttrAmountCharged] and [AttrBalanceRemaining], a failed one
// [AttrChargeReason], error.type (the outcome) and an Error status. The
// token is never recorded, nor is the error's text: a charge error may
// quote Skyfire's message, which is for logs.
//
// The returned Charger has only the two methods of [middleware.Charger]:
// keep the *charge.Client itself for its other calls (TokenCharges,
// Introspect).
func WrapCharger(c middleware.Charger, tp trace.TracerProvider) middleware.Charger {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &tracedCharger{inner: c, tracer: tp.Tracer(ScopeName)}
	if l, ok := c.(middleware.ChargeLister); ok {
		// Keep the charge listing the reconciler needs visible through
		// the wrapper.
		return &tracedLister{tracedCharger: t, lister: l}
	}
	return t
}

// tracedLister is a tracedCharger whose inner Charger also lists charges.
type tracedLister struct {
	*tracedCharger
	lister middleware.ChargeLister
}

// AllTokenCharges lists a token's charges through the inner Charger.
func (t *tracedLister) AllTokenCharges(ctx context.Context, jti string) ([]charge.ChargeRecord, error) {
	return t.lister.AllTokenCharges(ctx, jti)
}

type tracedCharger struct {
	inner  middleware.Charger
	tracer trace.Tracer
}

// Charge charges amount inside a span.
func (t *tracedCharger) Charge(ctx context.Context, token string, amount kyapay.Amount) (charge.Receipt, error) {
	ctx, span := t.tracer.Start(ctx, SpanCharge, trace.WithAttributes(AttrAmount.String(amount.String())))
	defer span.End()
	r, err := t.inner.Charge(ctx, token, amount)
	finish(span, r, err, amount, true)
	return r, err
}

// ChargeServicePrice charges the service price inside a span.
func (t *tracedCharger) ChargeServicePrice(ctx context.Context, token string) (charge.Receipt, error) {
	ctx, span := t.tracer.Start(ctx, SpanCharge, trace.WithAttributes(AttrServicePrice.Bool(true)))
	defer span.End()
	r, err := t.inner.ChargeServicePrice(ctx, token)
	finish(span, r, err, kyapay.Amount{}, false)
	return r, err
}

// finish records a charge call's result on its span.
func finish(span trace.Span, r charge.Receipt, err error, asked kyapay.Amount, hasAsked bool) {
	if !span.IsRecording() {
		return
	}
	if err == nil {
		outcome := "paid"
		if hasAsked && r.AmountCharged.Cmp(asked) != 0 {
			outcome = "mismatch"
		}
		attrs := []attribute.KeyValue{AttrOutcome.String(outcome), AttrAmountCharged.String(r.AmountCharged.String())}
		if r.HasRemainingBalance {
			attrs = append(attrs, AttrBalanceRemaining.String(r.RemainingBalance.String()))
		}
		span.SetAttributes(attrs...)
		return
	}
	outcome, reason := charge.OutcomeUnknown.String(), "other"
	var ce *charge.Error
	if errors.As(err, &ce) {
		outcome, reason = ce.Outcome.String(), ce.Reason.String()
	}
	span.SetAttributes(AttrOutcome.String(outcome), AttrChargeReason.String(reason), errorType.String(outcome))
	span.SetStatus(codes.Error, "charge "+outcome+" ("+reason+")")
}
