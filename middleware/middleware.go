package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// Charger charges pay tokens. *charge.Client implements it; tests and
// custom integrations may supply their own. Errors should be *charge.Error
// so the middleware can tell a decline from an unknown outcome; any other
// error is treated as an unknown outcome.
type Charger interface {
	Charge(ctx context.Context, token string, amount kyapay.Amount) (charge.Receipt, error)
	ChargeServicePrice(ctx context.Context, token string) (charge.Receipt, error)
}

// Defaults for [Config].
const (
	DefaultChargeTimeout     = 15 * time.Second
	DefaultMaxBufferBytes    = 16 << 20
	DefaultDepletedCacheSize = 10_000
)

// Config configures a [Middleware]. Zero values mean the documented
// defaults.
type Config struct {
	// Verifier verifies tokens. Required.
	Verifier *kyapay.Verifier
	// Charger charges pay tokens, usually a *charge.Client. Required for
	// paid routes: installing a priced Requirement without one is an error.
	Charger Charger
	// Header is the request header carrying the token. Default:
	// kyapay.HeaderName ("skyfire-pay-id").
	Header string
	// Policy maps refusal codes to HTTP statuses. Default: PolicySeed (402
	// for missing, invalid and depleted tokens).
	Policy StatusPolicy
	// ErrorHandler writes refusals. Default: DefaultErrorHandler(Policy).
	ErrorHandler ErrorHandler
	// Logger receives refusals (Debug), charges (Info) and charge failures
	// (Warn; Error for unknown outcomes, with the jti to reconcile). It
	// never receives a token or an API key. Default: discard.
	Logger *slog.Logger
	// ChargeTimeout bounds each charge call. In ChargeAfter mode it starts
	// when the handler returns. Default: DefaultChargeTimeout (15 s).
	ChargeTimeout time.Duration
	// MaxBufferBytes bounds the response a ChargeAfter handler may write;
	// a larger response is not delivered, not charged, and answered with
	// 500. Default: DefaultMaxBufferBytes (16 MiB).
	MaxBufferBytes int
	// DepletedCacheSize bounds how many tokens' known balances are
	// remembered, so a token Skyfire reported as depleted is refused
	// without a network call until it expires. Default: 10,000; negative
	// disables.
	DepletedCacheSize int
	// Clock returns the current time. Default: time.Now.
	Clock func() time.Time
}

// Middleware protects handlers with KYAPay requirements. Build one with
// [New] and share it between routes; it is safe for concurrent use.
type Middleware struct {
	verifier      *kyapay.Verifier
	charger       Charger
	header        string
	headerKey     string // header in canonical form, computed once
	policy        StatusPolicy
	onError       ErrorHandler
	log           *slog.Logger
	chargeTimeout time.Duration
	maxBuffer     int
	now           func() time.Time
	balances      *lru.Cache[tokenKey, balanceEntry] // nil when disabled
}

// balanceEntry is what is known about a token's balance. Balances only go
// down, so a remembered balance is an upper bound and refusing a price
// above it is always right.
type balanceEntry struct {
	// known: Skyfire reported remaining as the balance.
	known     bool
	remaining kyapay.Amount
	// declinedAt is the smallest price Skyfire refused for lack of
	// balance (zero: none).
	declinedAt kyapay.Amount
	// serviceDeclined: a service-price charge was refused for balance.
	serviceDeclined bool
	expires         time.Time
}

// New validates cfg and returns a Middleware.
func New(cfg Config) (*Middleware, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("kyapay/middleware: Config.Verifier is required")
	}
	m := &Middleware{
		verifier:      cfg.Verifier,
		charger:       cfg.Charger,
		header:        cfg.Header,
		policy:        cfg.Policy,
		onError:       cfg.ErrorHandler,
		log:           cfg.Logger,
		chargeTimeout: cfg.ChargeTimeout,
		maxBuffer:     cfg.MaxBufferBytes,
		now:           cfg.Clock,
	}
	if m.header == "" {
		m.header = kyapay.HeaderName
	}
	if strings.ContainsAny(m.header, " \t\r\n:") {
		return nil, fmt.Errorf("kyapay/middleware: invalid header name %q", m.header)
	}
	m.headerKey = textproto.CanonicalMIMEHeaderKey(m.header)
	if m.policy > PolicyStatusCodes {
		return nil, fmt.Errorf("kyapay/middleware: unknown status policy %d", m.policy)
	}
	if m.onError == nil {
		m.onError = DefaultErrorHandler(m.policy)
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.chargeTimeout == 0 {
		m.chargeTimeout = DefaultChargeTimeout
	}
	if m.chargeTimeout < 0 {
		return nil, errors.New("kyapay/middleware: ChargeTimeout is negative")
	}
	if m.maxBuffer == 0 {
		m.maxBuffer = DefaultMaxBufferBytes
	}
	if m.maxBuffer < 0 {
		return nil, errors.New("kyapay/middleware: MaxBufferBytes is negative")
	}
	if m.now == nil {
		m.now = time.Now
	}
	size := cfg.DepletedCacheSize
	if size == 0 {
		size = DefaultDepletedCacheSize
	}
	if size > 0 {
		c, err := lru.New[tokenKey, balanceEntry](size)
		if err != nil {
			return nil, fmt.Errorf("kyapay/middleware: %w", err)
		}
		m.balances = c
	}
	return m, nil
}

// Require returns a middleware that enforces req on the handlers it wraps.
// It reports an invalid requirement (a malformed price, a priced route
// without a Charger, a set of types that accepts nothing) as an error.
func (m *Middleware) Require(req Requirement) (func(http.Handler) http.Handler, error) {
	rt, err := req.compile()
	if err != nil {
		return nil, err
	}
	if rt.needsPay && m.charger == nil {
		return nil, errors.New("kyapay/middleware: a priced requirement needs Config.Charger")
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("kyapay/middleware: nil handler")
		}
		return &protected{m: m, rt: rt, next: next}
	}, nil
}

// Wrap protects next with req. It panics if req is invalid, like
// http.Handle does for an invalid pattern: requirements are fixed at
// start-up. Use [Middleware.Require] to get the error instead.
func (m *Middleware) Wrap(next http.Handler, req Requirement) http.Handler {
	mw, err := m.Require(req)
	if err != nil {
		panic(err)
	}
	return mw(next)
}

// receiptKey is the context key for the charge receipt.
type receiptKey struct{}

// ReceiptFromContext returns the charge receipt of a request charged in
// ChargeBefore mode, and whether there was one. (In ChargeAfter mode the
// handler runs before the charge, so it has none.)
func ReceiptFromContext(ctx context.Context) (charge.Receipt, bool) {
	r, ok := ctx.Value(receiptKey{}).(*charge.Receipt)
	if !ok || r == nil {
		return charge.Receipt{}, false
	}
	return *r, true
}

// protected is one route's handler.
type protected struct {
	m    *Middleware
	rt   *route
	next http.Handler
}

func (p *protected) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, rt := p.m, p.rt
	token, err := m.extract(r)
	if err != nil {
		m.refuse(w, r, rt, err, kyapay.Amount{}, false, nil)
		return
	}
	claims, err := m.verifier.Verify(r.Context(), token)
	if err != nil {
		m.refuse(w, r, rt, err, kyapay.Amount{}, false, nil)
		return
	}
	if err := rt.check(claims); err != nil {
		m.refuse(w, r, rt, err, kyapay.Amount{}, false, claims)
		return
	}
	ctx := kyapay.NewContext(r.Context(), claims)
	if !rt.needsPay {
		p.next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	// The request carrying the claims is made only when something needs
	// it: a price function, a refusal (the ErrorHandler may read the
	// claims), charge-after mode. Charge-before builds one request with
	// claims and receipt together.
	var cr *http.Request
	claimsReq := func() *http.Request {
		if cr == nil {
			cr = r.WithContext(ctx)
		}
		return cr
	}

	price, hasPrice := rt.fixed, rt.price.kind == priceFixed
	if rt.price.kind == priceFunc {
		price, err = rt.price.fn(claimsReq())
		if err != nil {
			m.refuse(w, claimsReq(), rt, kyapay.NewError(kyapay.CodeInternal, "", fmt.Errorf("price function: %w", err)), kyapay.Amount{}, false, claims)
			return
		}
		if price.IsZero() {
			// A price function may make a request free.
			p.next.ServeHTTP(w, claimsReq())
			return
		}
		hasPrice = true
	}
	if err := m.precheck(claims, price, hasPrice); err != nil {
		m.refuse(w, claimsReq(), rt, err, price, hasPrice, claims)
		return
	}

	if rt.timing == ChargeAfter {
		p.serveChargeAfter(w, claimsReq(), token, claims, price, hasPrice)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, m.chargeTimeout)
	receipt, err := m.charge(cctx, token, claims, price, hasPrice)
	cancel()
	if err != nil {
		m.refuse(w, claimsReq(), rt, err, price, hasPrice, claims)
		return
	}
	p.next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, receiptKey{}, &receipt)))
}

// serveChargeAfter runs the handler into a buffer and charges only if it
// succeeded; the buffered response is released only after the charge is
// confirmed.
func (p *protected) serveChargeAfter(w http.ResponseWriter, r *http.Request, token string, claims *kyapay.Claims, price kyapay.Amount, hasPrice bool) {
	m, rt := p.m, p.rt
	bw := newBufferedWriter(m.maxBuffer)
	p.next.ServeHTTP(bw, r)
	status := bw.statusCode()
	if bw.overflow {
		m.refuse(w, r, rt, kyapay.NewError(kyapay.CodeInternal, "", errors.New("charge-after response exceeded MaxBufferBytes; not charged")), price, hasPrice, claims)
		return
	}
	if status >= 400 {
		// The handler failed: deliver its error response, charge nothing.
		bw.copyTo(w)
		return
	}
	if err := r.Context().Err(); err != nil {
		// The client is gone; the content cannot be delivered, so it is not
		// charged.
		m.log.LogAttrs(r.Context(), slog.LevelInfo, "kyapay: client left before charge; not charged",
			slog.String("jti", claims.ID))
		return
	}
	cctx, cancel := context.WithTimeout(r.Context(), m.chargeTimeout)
	_, err := m.charge(cctx, token, claims, price, hasPrice)
	cancel()
	if err != nil {
		m.refuse(w, r, rt, err, price, hasPrice, claims)
		return
	}
	bw.copyTo(w)
}

// extract reads the token from the configured header. More than one header
// line is ambiguous and refused. The header map is indexed with the
// canonical key computed in New, which is what Header.Values does minus
// canonicalising the name on every request.
func (m *Middleware) extract(r *http.Request) (string, error) {
	vals := r.Header[m.headerKey]
	switch len(vals) {
	case 0:
		return "", kyapay.ErrTokenMissing
	case 1:
	default:
		return "", kyapay.NewError(kyapay.CodeTokenMalformed, "more than one "+m.header+" header", nil)
	}
	tok := strings.TrimSpace(vals[0])
	if tok == "" {
		return "", kyapay.ErrTokenMissing
	}
	return tok, nil
}

// check applies the route's type and identity-field requirements.
func (rt *route) check(c *kyapay.Claims) error {
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
		return kyapay.NewError(kyapay.CodeIdentityFieldsMissing, "missing identity fields: "+strings.Join(missing, ", "), nil)
	}
	return nil
}

// precheck refuses, without a network call, a pay token whose amount is
// below the price or whose balance is known to be too low.
func (m *Middleware) precheck(c *kyapay.Claims, price kyapay.Amount, hasPrice bool) error {
	if hasPrice && c.HasAmount && c.Amount.Cmp(price) < 0 {
		return kyapay.ErrAmountInsufficient
	}
	if m.balances == nil {
		return nil
	}
	e, ok := m.balances.Get(balanceKey(c))
	if !ok {
		return nil
	}
	if m.now().After(e.expires) {
		m.balances.Remove(balanceKey(c))
		return nil
	}
	switch {
	case e.known && e.remaining.IsZero():
		return kyapay.ErrTokenDepleted
	case !hasPrice:
		if e.serviceDeclined {
			return kyapay.ErrTokenDepleted
		}
	case e.known && e.remaining.Cmp(price) < 0:
		return kyapay.ErrTokenDepleted
	case !e.declinedAt.IsZero() && price.Cmp(e.declinedAt) >= 0:
		return kyapay.ErrTokenDepleted
	}
	return nil
}

// tokenKey identifies a token for the balance cache: its issuer and jti
// (never the raw token string, whose signature encoding is malleable). A
// struct key costs no allocation, unlike a concatenated string.
type tokenKey struct{ iss, jti string }

func balanceKey(c *kyapay.Claims) tokenKey { return tokenKey{c.Issuer, c.ID} }

// remember records what a charge taught about the token's balance.
func (m *Middleware) remember(c *kyapay.Claims, update func(*balanceEntry)) {
	if m.balances == nil {
		return
	}
	key := balanceKey(c)
	e, _ := m.balances.Get(key)
	e.expires = c.Expiry
	update(&e)
	m.balances.Add(key, e)
}

// charge charges the token and turns failures into refusals. A charge whose
// outcome is unknown becomes charge_unknown (never a 402), one that never
// left becomes charge_unavailable, and a balance decline becomes
// token_depleted.
func (m *Middleware) charge(ctx context.Context, token string, c *kyapay.Claims, price kyapay.Amount, hasPrice bool) (charge.Receipt, error) {
	var receipt charge.Receipt
	var err error
	if hasPrice {
		receipt, err = m.charger.Charge(ctx, token, price)
	} else {
		receipt, err = m.charger.ChargeServicePrice(ctx, token)
	}
	if err == nil {
		if receipt.HasRemainingBalance {
			m.remember(c, func(e *balanceEntry) {
				if !e.known || receipt.RemainingBalance.Cmp(e.remaining) < 0 {
					e.known, e.remaining = true, receipt.RemainingBalance
				}
			})
		}
		m.log.LogAttrs(ctx, slog.LevelInfo, "kyapay: charged",
			slog.String("jti", c.ID), slog.String("sub", c.Subject),
			slog.String("amount", receipt.AmountCharged.String()),
			slog.String("remaining", receipt.RemainingBalance.String()))
		return receipt, nil
	}
	var ce *charge.Error
	if !errors.As(err, &ce) {
		ce = &charge.Error{Outcome: charge.OutcomeUnknown, Err: err}
	}
	attrs := []slog.Attr{slog.String("jti", c.ID), slog.String("sub", c.Subject),
		slog.String("outcome", ce.Outcome.String()), slog.Any("error", err)}
	if hasPrice {
		attrs = append(attrs, slog.String("amount", price.String()))
	}
	switch ce.Outcome {
	case charge.OutcomeDeclined:
		m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: charge declined", attrs...)
		switch ce.Reason {
		case charge.ReasonInsufficientBalance:
			m.remember(c, func(e *balanceEntry) {
				if !hasPrice {
					e.serviceDeclined = true
				} else if e.declinedAt.IsZero() || price.Cmp(e.declinedAt) < 0 {
					e.declinedAt = price
				}
			})
			return receipt, kyapay.NewError(kyapay.CodeTokenDepleted, "", err)
		case charge.ReasonRateLimited, charge.ReasonNotEligible:
			return receipt, kyapay.NewError(kyapay.CodeChargeUnavailable, "", err)
		case charge.ReasonTokenRejected:
			return receipt, kyapay.NewError(kyapay.CodeChargeDeclined, "the payment service rejected the token", err)
		}
		return receipt, kyapay.NewError(kyapay.CodeChargeDeclined, "", err)
	case charge.OutcomeNotSent:
		m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: charge not sent", attrs...)
		return receipt, kyapay.NewError(kyapay.CodeChargeUnavailable, "", err)
	}
	m.log.LogAttrs(ctx, slog.LevelError, "kyapay: charge outcome unknown; reconcile this token's charges", attrs...)
	return receipt, kyapay.NewError(kyapay.CodeChargeUnknown, "", err)
}

// refuse hands a refusal to the error handler.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, rt *route, err error, price kyapay.Amount, hasPrice bool, c *kyapay.Claims) {
	var ke *kyapay.Error
	if !errors.As(err, &ke) {
		ke = kyapay.NewError(kyapay.CodeInternal, "", err)
	}
	if !hasPrice && rt.price.kind == priceFixed {
		price, hasPrice = rt.fixed, true
	}
	if m.log.Enabled(r.Context(), slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("code", string(ke.Code)), slog.String("path", r.URL.Path)}
		if c != nil {
			attrs = append(attrs, slog.String("jti", c.ID), slog.String("sub", c.Subject))
		}
		if ke.Err != nil {
			attrs = append(attrs, slog.String("cause", ke.Err.Error()))
		}
		m.log.LogAttrs(r.Context(), slog.LevelDebug, "kyapay: refused", attrs...)
	}
	m.onError(w, r, &Refusal{
		Err:      ke,
		Accepted: rt.types,
		Price:    price,
		HasPrice: hasPrice,
		Format:   rt.format,
		Header:   m.header,
	})
}
