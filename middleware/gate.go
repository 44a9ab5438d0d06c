package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/kyapay/kyapay-go/charge"
	textclip "github.com/kyapay/kyapay-go/internal/clip"
	"github.com/kyapay/kyapay-go/kyapay"
)

// Route is a compiled, validated [Requirement]: what one route or tool
// demands. Build it once with [Middleware.Route] and hand it to
// [Middleware.Authorize] for every request; it is immutable and safe for
// concurrent use.
type Route struct {
	m        *Middleware
	name     string
	types    kyapay.TokenTypes
	fields   []string
	price    Price
	fixed    kyapay.Amount // valid when price.kind == priceFixed
	timing   ChargeTiming
	format   Format
	needsPay bool
}

// Name returns the route's name ([Requirement.Name]), "" if none was given.
func (rt *Route) Name() string { return rt.name }

// Accepted returns the token types the route accepts after the price and
// identity fields narrowed them (a priced route never accepts kya).
func (rt *Route) Accepted() kyapay.TokenTypes { return rt.types }

// Timing returns the route's charge timing.
func (rt *Route) Timing() ChargeTiming { return rt.timing }

// Paid reports whether the route has a price (it may still be free for one
// request when a price function returns zero).
func (rt *Route) Paid() bool { return rt.needsPay }

// FixedPrice returns the route's fixed price and true, or false when the
// price is not fixed (free, a price function, or the service price).
func (rt *Route) FixedPrice() (kyapay.Amount, bool) {
	return rt.fixed, rt.price.kind == priceFixed
}

// IdentityFields returns the hid fields the route requires.
func (rt *Route) IdentityFields() []string { return append([]string(nil), rt.fields...) }

// Header returns the HTTP header the Middleware reads tokens from.
func (m *Middleware) Header() string { return m.header }

// SignupURL returns where refusal texts tell buyers to create an account.
func (m *Middleware) SignupURL() string { return m.signupURL }

// Route validates req and compiles it for [Middleware.Authorize]. It reports
// an invalid requirement (a malformed price, a priced route without a
// Charger, a set of types that accepts nothing) as an error.
func (m *Middleware) Route(req Requirement) (*Route, error) {
	rt, err := req.compile()
	if err != nil {
		return nil, err
	}
	if rt.needsPay && m.charger == nil {
		return nil, errors.New("kyapay/middleware: a priced requirement needs Config.Charger")
	}
	rt.m = m
	return rt, nil
}

// Input is what a front end hands the gate for one request or tool call.
type Input struct {
	// Token is the raw token as the caller sent it; "" means none.
	Token string
	// TokenErr, when not nil, refuses the request with this error instead of
	// verifying Token: the front end met a problem finding the token (two
	// token headers, two different tokens in two places). A *kyapay.Error
	// keeps its code; any other error is an internal error.
	TokenErr error
	// Request is the HTTP request, when there is one. [PriceFunc] prices
	// need it (they are refused with internal_error without it), and the
	// [Config.OnCharged] hook receives it.
	Request *http.Request
	// NoCharge verifies the token and checks the requirement but never
	// charges: the request cannot deliver content (HEAD). The price is not
	// computed and the balance is not pre-checked.
	NoCharge bool
	// IdempotencyKey, when set on a request that is to be charged, makes it
	// idempotent: it is scoped to the token (issuer and jti) and the route,
	// and bound to Fingerprint. The first request reserves the key; a
	// duplicate while it runs gets a 409 [IdempotencyError]; a duplicate
	// after it completed gets its stored response ([Grant.Replay]) without
	// running or charging; the same key with another fingerprint gets a
	// 422. The front end then calls [Grant.Finish]. It is ignored when
	// nothing is charged (free and identity routes, NoCharge). HTTP reads
	// it from [IdempotencyKeyHeader] ([ParseIdempotencyKey]); MCP from the
	// request _meta member [MetaIdempotencyKey].
	IdempotencyKey string
	// Fingerprint identifies the request the key was first used for
	// ([Fingerprint], [FingerprintRequest]).
	Fingerprint [32]byte
}

// Grant is an accepted request: the verified claims, and either the
// receipt of a charge already made (ChargeBefore) or the right to charge
// once the content is ready ([Grant.Commit], ChargeAfter).
//
// A Grant is used by one goroutine, the one serving its request, and must
// not be copied after [Middleware.Authorize] returned it: keep it in a
// variable and call its methods on that.
type Grant struct {
	m        *Middleware
	rt       *Route
	ctx      context.Context
	claims   *kyapay.Claims
	token    string
	req      *http.Request
	price    kyapay.Amount
	hasPrice bool
	// pending: a charge is due at Commit.
	pending bool
	charged bool
	done    bool
	receipt charge.Receipt
	err     error
	idem    *idemState // nil without an idempotency key
}

// Claims returns the verified claims.
func (g *Grant) Claims() *kyapay.Claims { return g.claims }

// ContextOn returns ctx with the grant's claims and, when charged before,
// its receipt: the values of [Grant.Context] on another context (for
// example one that outlives the request, for a task the front end runs
// later).
func (g *Grant) ContextOn(ctx context.Context) context.Context {
	ctx = kyapay.NewContext(ctx, g.claims)
	if g.charged && !g.pending {
		ctx = NewReceiptContext(ctx, g.receipt)
	}
	return ctx
}

// NewReceiptContext returns ctx carrying receipt, for [ReceiptFromContext].
// Front ends that charge outside [Middleware.Authorize] use it to hand the
// receipt to the handler.
func NewReceiptContext(ctx context.Context, receipt charge.Receipt) context.Context {
	rp := new(charge.Receipt)
	*rp = receipt
	return context.WithValue(ctx, receiptKey{}, rp)
}

// Context returns the context to run the handler or tool with: the
// Authorize context carrying the claims ([kyapay.FromContext]) and, when the
// request was charged before, the receipt ([ReceiptFromContext]).
func (g *Grant) Context() context.Context { return g.ctx }

// Receipt returns the receipt of the charge made for this request, and
// whether one was made (a free request, a pending ChargeAfter charge and a
// NoCharge request have none).
func (g *Grant) Receipt() (charge.Receipt, bool) { return g.receipt, g.charged }

// Pending reports whether a charge is still due: the route charges after the
// handler, and neither [Grant.Commit] nor [Grant.Abandon] was called yet.
// When it is false, Commit has nothing to charge.
func (g *Grant) Pending() bool { return g.pending && !g.done }

// Price returns the price of this request and whether it is known locally
// (false for free requests and service-price routes).
func (g *Grant) Price() (kyapay.Amount, bool) { return g.price, g.hasPrice }

// Commit charges a pending ChargeAfter charge and returns its receipt. Call
// it only once the content is complete and about to be delivered. When
// nothing is pending (free route, ChargeBefore, NoCharge) it returns the
// receipt it has, if any, and a nil error. It is idempotent: later calls
// return the first call's result and never charge again.
//
// ctx bounds the wait (with [Config.ChargeTimeout] on top); a ctx that is
// already done charges nothing and returns its error, since the content can
// no longer be delivered. Any other error is a *[Refusal] to answer with
// instead of the content; charge_unknown and charge_mismatch refusals never
// ask the agent to pay again.
func (g *Grant) Commit(ctx context.Context) (charge.Receipt, error) {
	if g.done || !g.pending {
		return g.receipt, g.err
	}
	g.done = true
	if err := ctx.Err(); err != nil {
		g.m.log.LogAttrs(ctx, slog.LevelInfo, "kyapay: client left before charge; not charged",
			slog.String("jti", clip(g.claims.ID)))
		g.err = err
		return g.receipt, err
	}
	if st := g.idem; st != nil && !g.m.now().Add(g.m.chargeTimeout).Before(st.res.Now.Add(st.res.Lease)) {
		// The charge could end after the key's lease, when another attempt
		// may have taken the key over: do not charge.
		g.err = g.m.refusal(ctx, g.rt, g.req, kyapay.NewError(kyapay.CodeChargeUnavailable, "", errors.New("idempotency key lease ends before the charge could; not charged")), g.price, g.hasPrice, g.claims)
		return g.receipt, g.err
	}
	cctx, cancel := context.WithTimeout(ctx, g.m.chargeTimeout)
	started := g.m.now()
	receipt, note, err := g.m.charge(cctx, g.rt, g.req, g.token, g.claims, g.price, g.hasPrice)
	cancel()
	g.m.afterCharge(ctx, g, receipt, note, started, err)
	if err != nil {
		g.err = g.m.refusal(ctx, g.rt, g.req, err, g.price, g.hasPrice, g.claims)
		return g.receipt, g.err
	}
	g.receipt, g.charged = receipt, true
	g.m.onCharged(ctx, g.rt, g.req, g.claims, receipt)
	return receipt, nil
}

// Abandon gives up a pending charge: the content will not be delivered, so
// nothing is charged, and a later Commit returns an error. It does nothing
// when nothing is pending.
func (g *Grant) Abandon() {
	if g.pending && !g.done {
		g.done = true
		g.err = errAbandoned
	}
}

// drop abandons a pending charge and releases its idempotency key, if any:
// the request ends without content to store.
func (g *Grant) drop(ctx context.Context) {
	g.Abandon()
	_ = g.Finish(ctx, nil)
}

var errAbandoned = errors.New("kyapay/middleware: grant abandoned; nothing charged")

// Authorize is the gate every front end shares: it verifies in.Token,
// checks it against rt (types, identity fields), prices the request,
// pre-checks the known balance and, on ChargeBefore routes, charges. The
// returned Grant carries the claims and the receipt; on ChargeAfter routes
// it charges later with [Grant.Commit].
//
// A refusal is a *[Refusal] with a stable code; render it with the
// front end's responder ([Middleware.Refuse] for HTTP, [Middleware.Describe]
// for anything else).
func (m *Middleware) Authorize(ctx context.Context, rt *Route, in Input) (Grant, error) {
	if rt == nil || rt.m != m {
		return Grant{}, m.refusal(ctx, nil, in.Request, kyapay.NewError(kyapay.CodeInternal, "", errors.New("route not built by this Middleware")), kyapay.Amount{}, false, nil)
	}
	if in.TokenErr != nil {
		return Grant{}, m.refusal(ctx, rt, in.Request, in.TokenErr, kyapay.Amount{}, false, nil)
	}
	if in.Token == "" {
		return Grant{}, m.refusal(ctx, rt, in.Request, kyapay.ErrTokenMissing, kyapay.Amount{}, false, nil)
	}
	claims, err := m.verifier.Verify(ctx, in.Token)
	if err != nil {
		return Grant{}, m.refusal(ctx, rt, in.Request, err, kyapay.Amount{}, false, nil)
	}
	if err := rt.check(claims); err != nil {
		return Grant{}, m.refusal(ctx, rt, in.Request, err, kyapay.Amount{}, false, claims)
	}
	if m.observing(ctx, slog.LevelDebug) {
		m.emit(ctx, m.event(EventVerified, rt, in.Request, claims, kyapay.Amount{}, false))
	}
	g := Grant{m: m, rt: rt, ctx: kyapay.NewContext(ctx, claims), claims: claims, token: in.Token, req: in.Request}
	if !rt.needsPay || in.NoCharge {
		return g, nil
	}

	price, hasPrice := rt.fixed, rt.price.kind == priceFixed
	switch rt.price.kind {
	case priceFunc, priceContext:
		if rt.price.kind == priceFunc {
			if in.Request == nil {
				err = errors.New("PriceFunc needs an HTTP request; use ContextPrice outside HTTP")
			} else {
				price, err = rt.price.fn(in.Request.WithContext(g.ctx))
			}
		} else {
			price, err = rt.price.ctxFn(g.ctx)
		}
		if err != nil {
			return Grant{}, m.refusal(ctx, rt, in.Request, kyapay.NewError(kyapay.CodeInternal, "", fmt.Errorf("price function: %w", err)), kyapay.Amount{}, false, claims)
		}
		if price.IsZero() {
			// A price function may make a request free.
			return g, nil
		}
		hasPrice = true
	}
	g.price, g.hasPrice = price, hasPrice
	if err := m.precheck(claims, price, hasPrice); err != nil {
		return Grant{}, m.refusal(ctx, rt, in.Request, err, price, hasPrice, claims)
	}
	if in.IdempotencyKey != "" {
		return m.authorizeKeyed(ctx, rt, in, g)
	}
	if m.shared {
		if err := m.precheckShared(ctx, claims, price, hasPrice); err != nil {
			return Grant{}, m.refusal(ctx, rt, in.Request, err, price, hasPrice, claims)
		}
	}
	if rt.timing == ChargeAfter {
		g.pending = true
		return g, nil
	}
	if err := m.chargeBefore(&g, in); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// authorizeDeferred is Authorize for a request on a paid ChargeBefore
// route that must be charged only once its content is known: a conditional
// request that may end in 304 Not Modified (see [ChargeBefore]).
func (m *Middleware) authorizeDeferred(ctx context.Context, rt *Route, in Input) (Grant, error) {
	after := *rt
	after.timing = ChargeAfter
	g, err := m.Authorize(ctx, &after, in)
	g.rt = rt
	return g, err
}

// Charged is what [Config.OnCharged] receives after a confirmed charge.
type Charged struct {
	// Route is the route's name ([Requirement.Name]), or for HTTP routes
	// without one the request's mux pattern.
	Route string
	// Claims are the verified claims of the charged token.
	Claims *kyapay.Claims
	// Receipt is Skyfire's answer; check Receipt.Mismatch.
	Receipt charge.Receipt
	// Request is the HTTP request, or nil outside HTTP (MCP tool calls).
	Request *http.Request
}

func (m *Middleware) onCharged(ctx context.Context, rt *Route, r *http.Request, c *kyapay.Claims, receipt charge.Receipt) {
	if m.charged == nil {
		return
	}
	m.charged(ctx, &Charged{Route: routeName(rt, r), Claims: c, Receipt: receipt, Request: r})
}

// routeName is the route's configured name, else the request's pattern.
func routeName(rt *Route, r *http.Request) string {
	if rt != nil && rt.name != "" {
		return rt.name
	}
	if r != nil {
		return r.Pattern
	}
	return ""
}

// refusal logs a refusal at Debug and returns it as a *Refusal.
func (m *Middleware) refusal(ctx context.Context, rt *Route, r *http.Request, err error, price kyapay.Amount, hasPrice bool, c *kyapay.Claims) *Refusal {
	var ke *kyapay.Error
	if !errors.As(err, &ke) {
		ke = kyapay.NewError(kyapay.CodeInternal, "", err)
	}
	ref := &Refusal{Err: ke, Header: m.header, SignupURL: m.signupURL, Accepted: kyapay.AnyType}
	if rt != nil {
		if !hasPrice && rt.price.kind == priceFixed {
			price, hasPrice = rt.fixed, true
		}
		ref.Accepted, ref.Format = rt.types, rt.format
	}
	ref.Price, ref.HasPrice = price, hasPrice
	var ra *retryAfterError
	if errors.As(err, &ra) {
		ref.RetryAfter = ra.after
	}
	ref.Status = m.policy.Status(ke.Code)
	if m.observing(ctx, slog.LevelDebug) {
		e := m.event(EventRefused, rt, r, c, price, hasPrice)
		e.Code, e.Err = ke.Code, ke.Err
		m.emit(ctx, e)
		if ke.Code == kyapay.CodeKeyUnknown {
			e.Kind = EventKeyUnknown
			var kerr *kyapay.KeyError
			if errors.As(ke.Err, &kerr) {
				e.Issuer = kerr.Issuer
			}
			m.emit(ctx, e)
		}
	}
	return ref
}

// maxLogString bounds every attacker-influenced string written to a log.
const maxLogString = 256

// clip bounds s for a log line, marking what was cut.
func clip(s string) string {
	if p, cut := textclip.Prefix(s, maxLogString); cut {
		return p + "…[" + strconv.Itoa(len(s)-len(p)) + " bytes clipped]"
	}
	return s
}

// check applies the route's type and identity-field requirements.
func (rt *Route) check(c *kyapay.Claims) error {
	if !rt.types.Contains(c.Type) {
		switch {
		case rt.needsPay && !c.Type.HasPayment():
			return kyapay.ErrPayRequired
		case !c.Type.HasIdentity() && rt.types&(kyapay.TypeKYA|kyapay.TypeKYAPay) == rt.types:
			return kyapay.ErrIdentityRequired
		}
		return kyapay.ErrTypeNotAccepted
	}
	if len(rt.fields) == 0 {
		return nil
	}
	var missing []string
	for _, f := range rt.fields {
		if v, ok := c.Human.Field(f); !ok || (f == "verified" && v != "true") {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return kyapay.NewError(kyapay.CodeIdentityFieldsMissing, identityFieldsPrefix+" "+strings.Join(missing, ", "), nil)
	}
	return nil
}
