package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kyapay/kyapay-go/kyapay"
)

// ChargeTiming says when a paid route charges the token.
type ChargeTiming uint8

const (
	// ChargeBefore charges before the handler runs; the handler runs only
	// after Skyfire confirmed the charge. This is the default.
	ChargeBefore ChargeTiming = iota
	// ChargeAfter runs the handler first with its response buffered, and
	// charges only if it succeeded (status < 400). Not one byte of the
	// response reaches the client before the charge is confirmed; if the
	// charge is declined the client gets the refusal instead.
	ChargeAfter
)

// String returns "before" or "after".
func (t ChargeTiming) String() string {
	if t == ChargeAfter {
		return "after"
	}
	return "before"
}

// Format selects the body format of refusals on a route.
type Format uint8

const (
	// FormatAuto answers with MCP-style JSON when the caller prefers JSON
	// (Accept) or sent a JSON-RPC body, and with plain text otherwise. This
	// is the default.
	FormatAuto Format = iota
	// FormatText always answers with plain text.
	FormatText
	// FormatJSON always answers with MCP-style JSON.
	FormatJSON
)

// Price is what a paid route charges. Build it with [FixedPrice],
// [PriceFunc] or [ServicePrice]; the zero Price means the route is free.
type Price struct {
	kind  priceKind
	fixed string
	fn    func(*http.Request) (kyapay.Amount, error)
	ctxFn func(context.Context) (kyapay.Amount, error)
}

type priceKind uint8

const (
	priceNone priceKind = iota
	priceFixed
	priceFunc
	priceService
	priceContext
)

// FixedPrice charges the same decimal amount (USD, at most six decimals,
// e.g. "0.01") on every request. The amount is validated when the
// requirement is installed.
func FixedPrice(amount string) Price { return Price{kind: priceFixed, fixed: amount} }

// PriceFunc computes the price from the request. It runs after the token is
// verified, so it may read [kyapay.FromContext]. An error from fn refuses the
// request with an internal error (500), not a 402.
func PriceFunc(fn func(*http.Request) (kyapay.Amount, error)) Price {
	return Price{kind: priceFunc, fn: fn}
}

// ContextPrice computes the price from the context of the request or tool
// call, for front ends without an *http.Request (MCP tools): the context
// carries the verified claims ([kyapay.FromContext]) and whatever the front
// end adds (the MCP front ends add the tool call). A zero amount makes the
// call free; an error refuses it with internal_error.
func ContextPrice(fn func(ctx context.Context) (kyapay.Amount, error)) Price {
	return Price{kind: priceContext, ctxFn: fn}
}

// ServicePrice omits chargeAmount from the charge request, so Skyfire charges
// the seller service's PAY_PER_USE price. The middleware then knows no price
// locally: refusals do not state a required amount and the offline
// amount pre-check is skipped.
func ServicePrice() Price { return Price{kind: priceService} }

// NeedsRequest reports whether p can only be computed from an
// *http.Request ([PriceFunc]); front ends without one (MCP tools) refuse
// such a price at install.
func (p Price) NeedsRequest() bool { return p.kind == priceFunc }

// IsZero reports whether p is the zero Price (a free route).
func (p Price) IsZero() bool { return p.kind == priceNone }

// Requirement is what a route demands of the caller's token.
type Requirement struct {
	// Types is the set of accepted token types, e.g. kyapay.TypePay |
	// kyapay.TypeKYAPay. Zero means any type. A priced route accepts only
	// pay and kya-pay tokens whatever Types says; a route with
	// IdentityFields only kya and kya-pay.
	Types kyapay.TokenTypes
	// IdentityFields lists hid fields that must be present and non-empty,
	// by their Skyfire names (as in humanIdentityRequirement): "email",
	// "given_name", "family_name", "birthdate", ... Default: none.
	IdentityFields []string
	// Price makes the route paid. Default: free.
	Price Price
	// Timing is when a paid route charges. Default: ChargeBefore.
	Timing ChargeTiming
	// Format is the refusal body format. Default: FormatAuto.
	Format Format
	// Name names the route in logs and in [Config.OnCharged] (for example
	// "quote" or "GET /v1/quote"). Default: the request's mux pattern for
	// HTTP routes.
	Name string
}

// AnyToken requires any valid KYAPay token.
func AnyToken() Requirement { return Requirement{Types: kyapay.AnyType} }

// Identity requires a token that carries identity: kya or kya-pay. Fields,
// if given, must be present in its hid claim.
func Identity(fields ...string) Requirement {
	return Requirement{Types: kyapay.TypeKYA | kyapay.TypeKYAPay, IdentityFields: fields}
}

// Pay requires a token that can be charged (pay or kya-pay) and charges
// price on each request.
func Pay(price Price) Requirement {
	return Requirement{Types: kyapay.TypePay | kyapay.TypeKYAPay, Price: price}
}

// KYAPay requires a kya-pay token, charged price on each request (a zero
// Price makes it free).
func KYAPay(price Price) Requirement {
	return Requirement{Types: kyapay.TypeKYAPay, Price: price}
}

// knownIdentityFields are the hid fields a requirement may name.
var knownIdentityFields = map[string]bool{
	"email": true, "given_name": true, "middle_name": true, "family_name": true,
	"birthdate": true, "phone_number": true, "organization_name": true,
	"verifier": true, "verified": true, "verification_id": true,
}

// compile validates r and derives the route's effective accepted types.
func (r Requirement) compile() (*Route, error) {
	types := r.Types
	if types == 0 {
		types = kyapay.AnyType
	}
	if types&^kyapay.AnyType != 0 {
		return nil, fmt.Errorf("kyapay/middleware: unknown token type bits %#x", uint8(types&^kyapay.AnyType))
	}
	rt := &Route{name: r.Name, price: r.Price, timing: r.Timing, format: r.Format}
	if r.Timing > ChargeAfter {
		return nil, fmt.Errorf("kyapay/middleware: unknown charge timing %d", r.Timing)
	}
	if r.Format > FormatJSON {
		return nil, fmt.Errorf("kyapay/middleware: unknown format %d", r.Format)
	}
	switch r.Price.kind {
	case priceNone:
	case priceFixed:
		a, err := kyapay.ParseAmount(r.Price.fixed)
		if err != nil {
			return nil, fmt.Errorf("kyapay/middleware: invalid fixed price: %w", err)
		}
		if a.IsZero() {
			return nil, errors.New("kyapay/middleware: fixed price must be greater than zero (use a zero Price for a free route)")
		}
		rt.fixed = a
	case priceFunc:
		if r.Price.fn == nil {
			return nil, errors.New("kyapay/middleware: PriceFunc with a nil function")
		}
	case priceContext:
		if r.Price.ctxFn == nil {
			return nil, errors.New("kyapay/middleware: ContextPrice with a nil function")
		}
	case priceService:
	default:
		return nil, errors.New("kyapay/middleware: invalid Price")
	}
	if !r.Price.IsZero() {
		rt.needsPay = true
		types &^= kyapay.TypeKYA
	}
	for _, f := range r.IdentityFields {
		if !knownIdentityFields[f] {
			return nil, fmt.Errorf("kyapay/middleware: unknown identity field %q", f)
		}
		rt.fields = append(rt.fields, f)
	}
	if len(rt.fields) > 0 {
		types &^= kyapay.TypePay
	}
	if types == 0 {
		return nil, fmt.Errorf("kyapay/middleware: requirement accepts no token type (types %v, priced %v, identity fields %v)", r.Types, rt.needsPay, rt.fields)
	}
	rt.types = types
	return rt, nil
}
