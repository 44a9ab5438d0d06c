package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/jwks"
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
	DefaultChargeTimeout     = charge.DefaultTimeout
	DefaultMaxBufferBytes    = 16 << 20
	DefaultDepletedCacheSize = 10_000
	DefaultDeclineMemory     = time.Minute
	DefaultIdempotencyLease  = 5 * time.Minute
	DefaultMaxReplayBytes    = 64 << 10
	DefaultReconcileInterval = 30 * time.Second
	DefaultReconcileAfter    = 2 * time.Minute
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
	// Policy maps refusal codes to HTTP statuses and texts. Default:
	// PolicySeed (402 for missing, invalid and depleted tokens). It sets
	// [Refusal.Status] on every refusal, so a custom ErrorHandler sees the
	// policy's status too.
	Policy StatusPolicy
	// ErrorHandler writes refusals. Default: DefaultErrorHandler(Policy).
	// A custom handler should answer with [Refusal.Status].
	ErrorHandler ErrorHandler
	// SignupURL is where refusal texts tell a buyer to create a Skyfire
	// account. Default: the sandbox app (DefaultSandboxSignupURL) when the
	// Verifier expects sandbox tokens, else DefaultSignupURL.
	SignupURL string
	// OnCharged, when set, runs after every confirmed charge, in both
	// timings, before the content is released: in ChargeAfter mode it is
	// how a seller learns the receipt. It runs synchronously on the
	// request's goroutine, so it must be quick; it cannot undo the charge.
	OnCharged func(ctx context.Context, c *Charged)
	// DeclineMemory is how long a charge that Skyfire declined for lack of
	// balance keeps the token refused offline at that price or above, so a
	// depleted token costs no further round trips. It is kept short because
	// a decline may be transient. (A remaining balance that Skyfire
	// reported after a successful charge is remembered until the token
	// expires: balances only fall.) Default: DefaultDeclineMemory (1
	// minute); negative disables.
	DeclineMemory time.Duration
	// Logger receives the Middleware's events as log lines: refusals and
	// verifications (Debug), charges (Info), declines and charges not sent
	// (Warn), unknown outcomes and amount mismatches (Error, with the jti to
	// reconcile). It never receives a token, an API key or an email, and
	// every attacker-influenced string is clipped. Default: discard.
	Logger *slog.Logger
	// Observer receives the same events as typed values, for metrics and
	// tracing (see the kyapayprom and kyapayotel modules). It runs
	// synchronously and must be quick. Default: none, which costs nothing
	// on the request path.
	Observer Observer
	// ChargeTimeout bounds each charge call. In ChargeAfter mode it starts
	// when the handler returns. Default: DefaultChargeTimeout, the charge
	// client's own default timeout (10 s), so only one timer runs.
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
	// Store holds what the seller's replicas share: known balances,
	// idempotency records and charges of unknown outcome. Default: a
	// [MemoryStore] private to this Middleware. With a shared Store (such
	// as kyapayredis), each paid request also asks it for the token's
	// balance, and a request with an idempotency key costs at most two
	// Store operations. Unpaid and identity routes never touch it.
	Store Store
	// IdempotencyLease is how long a request with an idempotency key holds
	// the key; a duplicate meanwhile is answered 409. A holder that
	// vanishes (a crash) frees the key when its lease ends, and its charge,
	// if any, is reconciled. It must exceed ChargeTimeout and should
	// exceed the slowest handler. Default: DefaultIdempotencyLease (5
	// minutes).
	IdempotencyLease time.Duration
	// MaxReplayBytes bounds the stored response of an idempotent request
	// (status, headers and body as encoded). A larger response is not
	// stored: a duplicate then runs the handler again, without charging.
	// Default: DefaultMaxReplayBytes (64 KiB).
	MaxReplayBytes int
	// ReconcileInterval is how often the Middleware looks for charges of
	// unknown outcome to resolve through the Charger's charge listing
	// ([ChargeLister]). Default: DefaultReconcileInterval (30 s); negative
	// disables the background loop ([Middleware.Reconcile] still works, and
	// a retry under the same idempotency key still resolves its charge).
	ReconcileInterval time.Duration
	// ReconcileAfter is how long after a charge's outcome became unknown a
	// charge that Skyfire does not list is taken as never made. Until then,
	// a retry under the same idempotency key is answered 409. Default:
	// DefaultReconcileAfter (2 minutes).
	ReconcileAfter time.Duration
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
	signupURL     string
	charged       func(context.Context, *Charged)
	declineMemory time.Duration
	obs           Observer
	balances      *lru.Cache[tokenKey, balanceEntry] // nil when disabled
	store         Store
	shared        bool         // store came from Config.Store
	lister        ChargeLister // nil when the Charger cannot list charges
	idemLease     time.Duration
	maxReplay     int
	reconcileGap  time.Duration // <= 0: no background loop
	settle        time.Duration
	rec           reconciler
	unlistenKeys  func() // removes the key-refresh listener; nil if none
}

// balanceEntry is what this process remembers about a token's balance,
// until the token expires.
type balanceEntry struct {
	Balance
	expires time.Time
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
		signupURL:     cfg.SignupURL,
		charged:       cfg.OnCharged,
		declineMemory: cfg.DeclineMemory,
		obs:           cfg.Observer,
	}
	if m.signupURL == "" {
		m.signupURL = DefaultSignupURL
		if cfg.Verifier.Env() == kyapay.EnvSandbox {
			m.signupURL = DefaultSandboxSignupURL
		}
	}
	if strings.ContainsAny(m.signupURL, " \t\r\n") {
		return nil, errors.New("kyapay/middleware: SignupURL contains white space")
	}
	switch {
	case m.declineMemory == 0:
		m.declineMemory = DefaultDeclineMemory
	case m.declineMemory < 0:
		m.declineMemory = 0
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
		m.log = slog.New(slog.DiscardHandler)
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
	if err := m.initStore(cfg); err != nil {
		return nil, err
	}
	m.listenKeys()
	return m, nil
}

// refreshNotifier is what a key source offers to report its fetches
// (*jwks.Cache does).
type refreshNotifier interface {
	AddRefreshListener(func(jwks.RefreshEvent)) (remove func())
}

// listenKeys turns the verifier's key fetches into events, when anything
// consumes them. [Middleware.Close] removes the listener.
func (m *Middleware) listenKeys() {
	if m.obs == nil && !m.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	n, ok := m.verifier.Keys().(refreshNotifier)
	if !ok {
		return
	}
	m.unlistenKeys = n.AddRefreshListener(func(ev jwks.RefreshEvent) {
		e := Event{Kind: EventKeysRefreshed, Issuer: ev.Issuer, Keys: ev.Keys, Duration: ev.Duration, Err: ev.Err}
		if ev.Err != nil {
			e.Kind = EventKeysRefreshFailed
		}
		m.emit(context.Background(), e)
	})
}

// Require returns a middleware that enforces req on the handlers it wraps.
// It reports an invalid requirement (a malformed price, a priced route
// without a Charger, a set of types that accepts nothing) as an error;
// [Middleware.MustRequire] panics instead.
func (m *Middleware) Require(req Requirement) (func(http.Handler) http.Handler, error) {
	rt, err := m.Route(req)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("kyapay/middleware: nil handler")
		}
		return &protected{m: m, rt: rt, next: next}
	}, nil
}

// MustRequire is like [Middleware.Require] but panics if req is invalid,
// like http.Handle does for an invalid pattern: requirements are fixed at
// start-up.
func (m *Middleware) MustRequire(req Requirement) func(http.Handler) http.Handler {
	mw, err := m.Require(req)
	if err != nil {
		panic(err)
	}
	return mw
}

// Wrap protects next with req, or reports an invalid req as an error;
// [Middleware.MustWrap] panics instead.
func (m *Middleware) Wrap(next http.Handler, req Requirement) (http.Handler, error) {
	mw, err := m.Require(req)
	if err != nil {
		return nil, err
	}
	return mw(next), nil
}

// MustWrap protects next with req. It panics if req is invalid, like
// http.Handle does for an invalid pattern: requirements are fixed at
// start-up. Use [Middleware.Wrap] to get the error instead.
func (m *Middleware) MustWrap(next http.Handler, req Requirement) http.Handler {
	return m.MustRequire(req)(next)
}

// receiptKey is the context key for the charge receipt.
type receiptKey struct{}

// ReceiptFromContext returns the charge receipt of a request charged in
// ChargeBefore mode, and whether there was one. (In ChargeAfter mode the
// handler runs before the charge, so it has none; use [Config.OnCharged] to
// learn the receipt of every charge.)
func ReceiptFromContext(ctx context.Context) (charge.Receipt, bool) {
	r, ok := ctx.Value(receiptKey{}).(*charge.Receipt)
	if !ok || r == nil {
		return charge.Receipt{}, false
	}
	return *r, true
}

// protected is one route's handler: the net/http front end of the gate.
type protected struct {
	m    *Middleware
	rt   *Route
	next http.Handler
}

func (p *protected) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = p.m.Serve(w, r, p.rt, p.serveNext)
}

func (p *protected) serveNext(w http.ResponseWriter, r *http.Request) error {
	p.next.ServeHTTP(w, r)
	return nil
}

// Serve runs one HTTP request through the gate with rt and, if it is
// accepted, through next: the logic of [Middleware.Wrap] for front ends
// whose next handler returns an error (reverse proxies such as Caddy). It
// returns next's error, or nil when it answered the request itself (a
// refusal, or the buffered response of a ChargeAfter route).
//
// On a ChargeAfter route (and for conditional requests on any paid route)
// next writes into a buffer. If next returns an error, nothing is charged,
// nothing is written, and the error is returned for the caller to answer
// (for example Caddy's 502 when the upstream is down). Otherwise the
// response is charged only if it delivers content ([Chargeable]) and
// released only after the charge is confirmed.
//
// On a paid route, a request with an [IdempotencyKeyHeader] is idempotent
// (see [Input.IdempotencyKey]): its body is read (up to MaxBufferBytes) to
// fingerprint it, its charged response is stored as it is delivered, and a
// duplicate gets the stored response with [ReplayedHeader] "true", a 409
// while the first runs, or a 422 when it is another request.
func (m *Middleware) Serve(w http.ResponseWriter, r *http.Request, rt *Route, next func(http.ResponseWriter, *http.Request) error) error {
	in := Input{Request: r, NoCharge: r.Method == http.MethodHead}
	in.Token, in.TokenErr = m.extract(r)
	charges := rt.needsPay && !in.NoCharge
	if charges && len(r.Header[IdempotencyKeyHeader]) > 0 {
		if err := m.readIdempotency(r, rt, &in); err != nil {
			m.Refuse(w, r, err)
			return nil
		}
	}
	var g Grant
	var err error
	if charges && rt.timing == ChargeBefore && isConditional(r) {
		// A conditional request may end in 304 Not Modified, which delivers
		// no content: charge it only after the handler, whatever the timing.
		g, err = m.authorizeDeferred(r.Context(), rt, in)
	} else {
		g, err = m.Authorize(r.Context(), rt, in)
	}
	if err != nil {
		m.Refuse(w, r, err)
		return nil
	}
	if g.idem != nil {
		return m.serveKeyed(w, r, rt, &g, next)
	}
	if !g.Pending() {
		return next(w, r.WithContext(g.Context()))
	}
	return m.serveChargeAfter(w, r.WithContext(g.Context()), rt, &g, next)
}

// serveKeyed serves a paid request with an idempotency key: a replay, a
// ChargeAfter request, or a charged (or already paid) request whose
// response is kept for replay as it streams to the client.
func (m *Middleware) serveKeyed(w http.ResponseWriter, r *http.Request, rt *Route, g *Grant, next func(http.ResponseWriter, *http.Request) error) error {
	if stored, ok := g.Replay(); ok {
		m.writeReplay(w, r, g, stored)
		return nil
	}
	r = r.WithContext(g.Context())
	if g.Pending() {
		return m.serveChargeAfter(w, r, rt, g, next)
	}
	cw := &captureWriter{ResponseWriter: w, max: m.maxReplay}
	err := next(cw, r)
	var stored []byte
	if err == nil {
		stored = cw.encode()
	}
	_ = g.Finish(r.Context(), stored)
	return err
}

// isConditional reports whether r carries a validator that lets the handler
// answer 304 Not Modified.
func isConditional(r *http.Request) bool {
	h := r.Header
	return len(h["If-None-Match"]) > 0 || len(h["If-Modified-Since"]) > 0
}

// Chargeable reports whether a response with this status to a request with
// this method delivers content and may be charged: a 2xx other than 204 No
// Content and 205 Reset Content, to any method but HEAD. 206 Partial Content
// delivers content and is charged the full price. 1xx, 3xx (304 Not
// Modified included), 4xx and 5xx responses are never charged.
func Chargeable(method string, status int) bool {
	return method != http.MethodHead && status >= 200 && status < 300 &&
		status != http.StatusNoContent && status != http.StatusResetContent
}

// serveChargeAfter runs next into a buffer and charges only if it
// delivered content; the buffered response is released only after the
// charge is confirmed.
func (m *Middleware) serveChargeAfter(w http.ResponseWriter, r *http.Request, rt *Route, g *Grant, next func(http.ResponseWriter, *http.Request) error) error {
	bw := newBufferedWriter(m.maxBuffer)
	if err := next(bw, r); err != nil {
		g.drop(r.Context())
		return err
	}
	status := bw.statusCode()
	if bw.overflow {
		g.drop(r.Context())
		m.Refuse(w, r, m.refusal(r.Context(), rt, r, kyapay.NewError(kyapay.CodeInternal, "", errors.New("charge-after response exceeded MaxBufferBytes; not charged")), g.price, g.hasPrice, g.claims))
		return nil
	}
	if err := bw.lengthMismatch(); err != nil {
		// The handler declared a Content-Length its body does not match: the
		// client would get a truncated or broken response. A failure.
		g.drop(r.Context())
		m.Refuse(w, r, m.refusal(r.Context(), rt, r, kyapay.NewError(kyapay.CodeInternal, "", err), g.price, g.hasPrice, g.claims))
		return nil
	}
	if !Chargeable(r.Method, status) {
		// No content (204, 304), a redirect, or a failure: deliver it as the
		// handler wrote it, charge nothing.
		g.drop(r.Context())
		bw.copyTo(w)
		return nil
	}
	_, err := g.Commit(r.Context())
	if g.idem != nil {
		// Stored with the charge, or kept with a charge of unknown outcome
		// for delivery once it is found made.
		_ = g.Finish(r.Context(), encodeResponse(status, bw.header, bw.body.Bytes(), m.maxReplay))
	}
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client is gone: nothing to answer, nothing charged
		}
		m.Refuse(w, r, err)
		return nil
	}
	bw.copyTo(w)
	return nil
}

// extract reads the token from the configured header. More than one header
// line is ambiguous and refused. The header map is indexed with the
// canonical key computed in New, which is what Header.Values does minus
// canonicalising the name on every request.
func (m *Middleware) extract(r *http.Request) (string, error) {
	vals := r.Header[m.headerKey]
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", kyapay.NewError(kyapay.CodeTokenAmbiguous, "more than one "+m.header+" header", nil)
	}
	return strings.TrimSpace(vals[0]), nil
}

// precheck refuses, without a network call, a pay token whose amount is
// below the price or whose balance is known to be too low in this process.
func (m *Middleware) precheck(c *kyapay.Claims, price kyapay.Amount, hasPrice bool) error {
	if hasPrice && c.HasAmount && c.Amount.Cmp(price) < 0 {
		return kyapay.ErrAmountInsufficient
	}
	if m.balances == nil {
		return nil
	}
	key := balanceKey(c)
	e, ok := m.balances.Get(key)
	if !ok {
		return nil
	}
	now := m.now()
	if now.After(e.expires) {
		m.balances.Remove(key)
		return nil
	}
	return e.refuses(price, hasPrice, now)
}

// tokenKey identifies a token for the balance cache: its issuer and jti
// (never the raw token string, whose signature encoding is malleable). A
// struct key costs no allocation, unlike a concatenated string.
type tokenKey struct{ iss, jti string }

func balanceKey(c *kyapay.Claims) tokenKey { return tokenKey{c.Issuer, c.ID} }

// remember merges what a charge (here or, through the Store, on another
// replica) taught about the token's balance into this process's memory.
// The key is copied so that the entry does not keep the token's decoded
// payload alive.
func (m *Middleware) remember(c *kyapay.Claims, b Balance) {
	if m.balances == nil || b == (Balance{}) {
		return
	}
	key := balanceKey(c)
	e, ok := m.balances.Get(key)
	if !ok {
		key = tokenKey{strings.Clone(key.iss), strings.Clone(key.jti)}
	}
	// Skyfire may still charge for 24 hours after exp, but a token past exp
	// no longer verifies here, so its entry is useless past exp.
	e.expires = c.Expiry
	e.Merge(b)
	m.balances.Add(key, e)
}

// charge charges the token and turns failures into refusals. A charge whose
// outcome is unknown becomes charge_unknown (never a 402), one that never
// left becomes charge_unavailable, a balance decline becomes
// token_depleted, and a confirmed charge of less than the price becomes
// charge_mismatch. Every outcome is reported as an Event. The returned
// Note is what the charge taught about the token (already remembered in
// this process), for the Store.
func (m *Middleware) charge(ctx context.Context, rt *Route, r *http.Request, token string, c *kyapay.Claims, price kyapay.Amount, hasPrice bool) (charge.Receipt, Note, error) {
	observe := m.observing(ctx, slog.LevelDebug) || m.log.Enabled(ctx, slog.LevelInfo)
	var start time.Time
	if observe {
		m.emit(ctx, m.event(EventChargeStarted, rt, r, c, price, hasPrice))
		start = time.Now()
	}
	var receipt charge.Receipt
	var note Note
	var err error
	if hasPrice {
		receipt, err = m.charger.Charge(ctx, token, price)
	} else {
		receipt, err = m.charger.ChargeServicePrice(ctx, token)
	}
	if err == nil {
		if hasPrice {
			receipt.Requested, receipt.HasRequested = price, true
		}
		note.ChargeID = receipt.TransactionID
		if receipt.HasRemainingBalance {
			note.Balance.Known, note.Balance.Remaining = true, receipt.RemainingBalance
			m.remember(c, note.Balance)
		}
		short := receipt.Mismatch() && receipt.AmountCharged.Cmp(price) < 0
		if observe || receipt.Mismatch() {
			kind := EventPaid
			if receipt.Mismatch() {
				kind = EventMismatch
			}
			e := m.event(kind, rt, r, c, price, hasPrice)
			e.Amount = receipt.AmountCharged
			e.Remaining, e.HasRemaining = receipt.RemainingBalance, receipt.HasRemainingBalance
			if observe {
				e.Duration = time.Since(start)
			}
			if short {
				e.Code = kyapay.CodeChargeMismatch
			}
			m.emit(ctx, e)
		}
		if short {
			return receipt, note, kyapay.NewError(kyapay.CodeChargeMismatch, "", fmt.Errorf("charged %s of %s", receipt.AmountCharged, price))
		}
		return receipt, note, nil
	}
	var ce *charge.Error
	if !errors.As(err, &ce) {
		ce = &charge.Error{Outcome: charge.OutcomeUnknown, Err: err}
	}
	var kind EventKind
	var refusal *kyapay.Error
	switch ce.Outcome {
	case charge.OutcomeDeclined:
		kind = EventDeclined
		switch ce.Reason {
		case charge.ReasonInsufficientBalance:
			// Evidence that the balance is gone, but remembered only for
			// DeclineMemory: a decline can be wrong, and the balance may be
			// spendable again later.
			note.Balance.DeclineUntil = m.now().Add(m.declineMemory)
			if hasPrice {
				note.Balance.DeclinedAt = price
			} else {
				note.Balance.ServiceDeclined = true
			}
			m.remember(c, note.Balance)
			refusal = kyapay.NewError(kyapay.CodeTokenDepleted, "", err)
		case charge.ReasonRateLimited, charge.ReasonNotEligible, charge.ReasonPaymentFailed:
			// Nothing was charged and the balance may be intact (a rate
			// limit, a transient payment failure): the agent may retry.
			refusal = kyapay.NewError(kyapay.CodeChargeUnavailable, "", err)
		case charge.ReasonAPIKeyRejected:
			// The seller's API key was refused even after a re-read: an
			// operator error, never the buyer's. Logged at Error below.
			refusal = kyapay.NewError(kyapay.CodeChargeUnavailable, "", err)
		case charge.ReasonTokenRejected:
			refusal = kyapay.NewError(kyapay.CodeChargeDeclined, "the payment service rejected the token", err)
		default:
			refusal = kyapay.NewError(kyapay.CodeChargeDeclined, "", err)
		}
	case charge.OutcomeNotSent:
		kind = EventNotSent
		refusal = kyapay.NewError(kyapay.CodeChargeUnavailable, "", err)
	default:
		kind = EventUnknown
		refusal = kyapay.NewError(kyapay.CodeChargeUnknown, "", err)
	}
	e := m.event(kind, rt, r, c, price, hasPrice)
	e.Code, e.Err = refusal.Code, err
	if observe {
		e.Duration = time.Since(start)
	}
	m.emit(ctx, e)
	if ce.Reason == charge.ReasonAPIKeyRejected {
		m.log.LogAttrs(ctx, slog.LevelError, "kyapay: the charge API rejected the seller's API key even after re-reading it; fix the configured key (charges fail with 503 until then)",
			slog.String("error", clip(err.Error())))
	}
	if ce.RetryAfter > 0 {
		return receipt, note, &retryAfterError{err: refusal, after: ce.RetryAfter}
	}
	return receipt, note, refusal
}

// retryAfterError is a refusal that carries the charge API's Retry-After.
type retryAfterError struct {
	err   *kyapay.Error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// event builds an Event about a verified token on a route.
func (m *Middleware) event(kind EventKind, rt *Route, r *http.Request, c *kyapay.Claims, price kyapay.Amount, hasPrice bool) Event {
	e := Event{Kind: kind, Route: routeName(rt, r), Price: price, HasPrice: hasPrice}
	if rt != nil {
		e.Timing = rt.timing
	}
	if r != nil {
		e.Path = r.URL.Path
	}
	if c != nil {
		e.TokenType, e.Issuer, e.JTI, e.Subject = c.Type, c.Issuer, c.ID, c.Subject
	}
	return e
}

// Refuse answers an HTTP request with a refusal from [Middleware.Authorize]
// or [Grant.Commit]. An [*IdempotencyError] is answered with its status
// (400, 409 with Retry-After, 413 or 422) and its code in the KYAPay-Error
// header. For any other refusal it sets the KYAPay-Error header to the
// refusal's code and hands the refusal to the configured [ErrorHandler]. An error that is
// not a *Refusal is answered as internal_error.
func (m *Middleware) Refuse(w http.ResponseWriter, r *http.Request, err error) {
	var ie *IdempotencyError
	if errors.As(err, &ie) && ie != nil {
		writeIdempotencyError(w, r, ie)
		return
	}
	var ref *Refusal
	if !errors.As(err, &ref) || ref == nil {
		ref = m.refusal(r.Context(), nil, r, err, kyapay.Amount{}, false, nil)
	}
	w.Header().Set(CodeHeader, string(ref.Err.Code))
	m.onError(w, r, ref)
}

// CodeHeader is the response header that carries the machine code of every
// refusal ("token_expired", "token_depleted", ...), whatever the body
// format.
const CodeHeader = "KYAPay-Error"
