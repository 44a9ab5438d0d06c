package middleware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// Idempotency names.
const (
	// IdempotencyKeyHeader is the request header that makes a paid HTTP
	// request idempotent (draft-ietf-httpapi-idempotency-key-header).
	IdempotencyKeyHeader = "Idempotency-Key"
	// ReplayedHeader marks a response replayed from an earlier request with
	// the same idempotency key: "Idempotent-Replayed: true".
	ReplayedHeader = "Idempotent-Replayed"
	// MetaIdempotencyKey is the MCP request _meta member that carries an
	// idempotency key for a paid tool call; MetaReplayed is the result
	// _meta member (true) that marks a replayed tool result.
	MetaIdempotencyKey = "xyz.skyfire/idempotency-key"
	MetaReplayed       = "xyz.skyfire/replayed"
	// MaxIdempotencyKeyLen bounds an idempotency key, in bytes.
	MaxIdempotencyKeyLen = 255
)

// Codes of an [IdempotencyError]. They travel in the KYAPay-Error header
// like the refusal codes, but say nothing about the token.
const (
	// CodeIdempotencyKeyInvalid (400): the key is malformed, or the header
	// was sent more than once.
	CodeIdempotencyKeyInvalid kyapay.Code = "idempotency_key_invalid"
	// CodeIdempotencyConflict (409, Retry-After): a request with the key is
	// still in flight, or the outcome of its charge is being reconciled.
	// Retry with the same key; do not pay again.
	CodeIdempotencyConflict kyapay.Code = "idempotency_conflict"
	// CodeIdempotencyKeyReused (422): the key was used for another request
	// (method, path, query or body differ).
	CodeIdempotencyKeyReused kyapay.Code = "idempotency_key_reused"
	// CodeIdempotencyBodyTooLarge (413): the request body is larger than
	// Config.MaxBufferBytes, so it cannot be fingerprinted.
	CodeIdempotencyBodyTooLarge kyapay.Code = "idempotency_body_too_large"
)

// IdempotencyError is the error [Middleware.Authorize] returns when a
// request's idempotency key cannot be honoured. Nothing was charged and the
// handler must not run. It is not a *[Refusal]: the token is fine.
// [Middleware.Refuse] answers it over HTTP; other front ends render Code
// and Message and, for a conflict, ask the caller to retry after
// RetryAfter with the same key.
type IdempotencyError struct {
	Code kyapay.Code
	// Status is the HTTP status: 400, 409, 413 or 422.
	Status int
	// Message is a caller-facing sentence.
	Message string
	// RetryAfter is when to retry a conflict (at least one second).
	RetryAfter time.Duration
	format     Format
}

// Error returns the message.
func (e *IdempotencyError) Error() string {
	return "kyapay/middleware: " + string(e.Code) + ": " + e.Message
}

func idemInvalid(f Format) *IdempotencyError {
	return &IdempotencyError{Code: CodeIdempotencyKeyInvalid, Status: http.StatusBadRequest, format: f,
		Message: "The Idempotency-Key is invalid: send it once, with 1 to 255 visible ASCII characters."}
}

func idemConflict(f Format, retry time.Duration, pending bool) *IdempotencyError {
	retry = max(retry.Round(time.Second), time.Second)
	msg := "A request with this Idempotency-Key is still in progress. Retry later with the same key; do not pay again."
	if pending {
		msg = "The payment of the request with this Idempotency-Key is being reconciled. Retry later with the same key; do not pay again."
	}
	return &IdempotencyError{Code: CodeIdempotencyConflict, Status: http.StatusConflict, RetryAfter: retry, format: f, Message: msg}
}

func idemReused(f Format) *IdempotencyError {
	return &IdempotencyError{Code: CodeIdempotencyKeyReused, Status: http.StatusUnprocessableEntity, format: f,
		Message: "This Idempotency-Key was used for a different request. Use a new key for a new request."}
}

// ParseIdempotencyKey reads an Idempotency-Key header value: a structured
// field string (a quoted string, RFC 9651, as the draft specifies), or a
// bare value of visible ASCII as many clients send it. The key is 1 to
// [MaxIdempotencyKeyLen] bytes of printable ASCII.
func ParseIdempotencyKey(v string) (string, error) {
	v = trimOWS(v)
	if len(v) == 0 || len(v) > 2*MaxIdempotencyKeyLen+2 {
		return "", errIdemKey
	}
	if v[0] != '"' {
		if len(v) > MaxIdempotencyKeyLen {
			return "", errIdemKey
		}
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] >= 0x7f {
				return "", errIdemKey
			}
		}
		return v, nil
	}
	buf := make([]byte, 0, len(v))
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", errIdemKey
			}
			buf = append(buf, v[i])
		case c == '"':
			if i != len(v)-1 || len(buf) == 0 || len(buf) > MaxIdempotencyKeyLen {
				return "", errIdemKey
			}
			return string(buf), nil
		case c < ' ' || c >= 0x7f:
			return "", errIdemKey
		default:
			buf = append(buf, c)
		}
	}
	return "", errIdemKey // no closing quote
}

var errIdemKey = errors.New("kyapay/middleware: invalid idempotency key")

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validKey reports whether a key from any front end is acceptable: 1 to
// MaxIdempotencyKeyLen bytes without control characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}

// Fingerprint binds an idempotency key to one request: SHA-256 over the
// method, the target and the body, each length-prefixed. For HTTP,
// [FingerprintRequest] passes the method, the escaped path with its raw
// query, and the body. An MCP front end passes "tools/call", the tool name
// and the call's arguments as compact JSON.
func Fingerprint(method, target string, body []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(method), []byte(target), body} {
		putUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// errBodyTooLarge is returned by FingerprintRequest for a body over its
// bound.
var errBodyTooLarge = errors.New("kyapay/middleware: request body too large to fingerprint")

// FingerprintRequest fingerprints an HTTP request (method, path, query and
// body) for its idempotency key. It reads the body, at most maxBody bytes
// (a larger body is an error), and puts it back for the handler.
func FingerprintRequest(r *http.Request, maxBody int) ([32]byte, error) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := readBody(r, maxBody)
		if err != nil {
			return [32]byte{}, err
		}
		body = b
	}
	target := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	return Fingerprint(r.Method, target, body), nil
}

// idemState is the idempotency side of a Grant.
type idemState struct {
	res    Reservation
	held   bool   // res.Attempt holds the key: Finish is due
	replay []byte // a stored response to deliver instead
	note   Note   // what the charge taught, recorded at Finish
	// unknown: the charge's outcome is unknown (started, unknownAt).
	unknown            bool
	started, unknownAt time.Time
	// short: a charge of less than the price was made (shortCharge).
	short       bool
	shortCharge ChargeRef
	finished    bool
}

// Replay returns the stored response of an earlier request with the same
// idempotency key, and true when there is one: deliver it (marked as a
// replay: [ReplayedHeader], or [MetaReplayed] in MCP) instead of running
// the handler. Nothing is charged; [Grant.Receipt] returns the earlier
// charge. The bytes are what the front end gave [Grant.Finish].
func (g *Grant) Replay() ([]byte, bool) {
	if g.idem == nil || g.idem.replay == nil {
		return nil, false
	}
	return g.idem.replay, true
}

// Finish records how a request with an idempotency key ended; call it once
// the handler ran and [Grant.Commit] (if a charge was pending) returned,
// also when the content is not delivered, and before delivering it.
// response is the front end's encoding of what it delivers (the HTTP front
// end stores status, headers and body; an MCP front end the tool result).
//
//   - Charged: the response is stored and replayed to duplicates. A nil
//     response, or one over Config.MaxReplayBytes, is not stored: a
//     duplicate then runs the handler again without charging.
//   - Charge outcome unknown: the key's charge is pending; the response is
//     kept and delivered to a retry if the charge is found made.
//   - Nothing charged (a refusal, an uncharged response, Abandon): the key
//     is released and may be used again.
//
// Finish does nothing for a grant without a key, for a replay, and after
// the first call. Its error is for logs: the outcome is then reconciled
// when the key's lease ends.
func (g *Grant) Finish(ctx context.Context, response []byte) error {
	st := g.idem
	if st == nil || !st.held || st.finished {
		return nil
	}
	if len(response) > g.m.maxReplay {
		response = nil
	}
	o := Outcome{Note: st.note, Now: g.m.now()}
	switch {
	case g.charged:
		o.Kind, o.Charge, o.Response = OutcomeCharged, chargeRef(g.receipt), response
	case st.short:
		o.Kind, o.Charge = OutcomeCharged, st.shortCharge
	case st.unknown:
		o.Kind, o.Response = OutcomeUnknown, response
		o.Started, o.Unknown = st.started, st.unknownAt
	default:
		o.Kind = OutcomeReleased
	}
	return g.m.finish(ctx, g, o)
}

func chargeRef(r charge.Receipt) ChargeRef {
	return ChargeRef{ID: r.TransactionID, Amount: r.AmountCharged}
}

func receiptOf(c ChargeRef) charge.Receipt {
	return charge.Receipt{AmountCharged: c.Amount, TransactionID: c.ID}
}

// finish records o for the grant's key.
func (m *Middleware) finish(ctx context.Context, g *Grant, o Outcome) error {
	st := g.idem
	st.finished = true
	sctx, cancel := m.storeCtx(ctx)
	err := m.store.Finish(sctx, st.res, o)
	cancel()
	if o.Kind == OutcomeUnknown {
		m.startReconciler()
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrNotHolder):
		m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: idempotency key was taken over before the request finished",
			slog.String("jti", clip(g.claims.ID)))
	default:
		m.log.LogAttrs(ctx, slog.LevelError, "kyapay: store: recording an idempotent request failed; its charge is reconciled when its lease ends",
			slog.String("jti", clip(g.claims.ID)), slog.String("error", clip(err.Error())))
	}
	return err
}

// storeCtx bounds a Store operation. Operations that record money that
// moved must not be cut short because the client left, so the request's
// cancellation is dropped for a shared store.
func (m *Middleware) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if !m.shared {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), m.chargeTimeout)
}

// tokenRef names the token of c in the Store.
func (m *Middleware) tokenRef(c *kyapay.Claims) TokenRef {
	exp := c.Expiry
	if exp.IsZero() {
		exp = m.now()
	}
	return TokenRef{Issuer: c.Issuer, JTI: c.ID, Until: exp.Add(PostExpiryChargeWindow)}
}

// authorizeKeyed is the rest of Authorize for a paid request with an
// idempotency key: g is verified and priced, and passed the local
// balance check.
func (m *Middleware) authorizeKeyed(ctx context.Context, rt *Route, in Input, g Grant) (Grant, error) {
	if !validKey(in.IdempotencyKey) {
		return Grant{}, idemInvalid(rt.format)
	}
	m.startReconciler()
	now := m.now()
	res := Reservation{
		Token: m.tokenRef(g.claims), Route: routeName(rt, in.Request), Key: in.IdempotencyKey,
		Fingerprint: in.Fingerprint, Attempt: rand.Text(), Amount: g.price, HasAmount: g.hasPrice,
		Now: now, Lease: m.idemLease,
	}
	sctx, cancel := m.storeCtx(ctx)
	b, err := m.store.Begin(sctx, res)
	cancel()
	if err != nil {
		return Grant{}, m.refusal(ctx, rt, in.Request, kyapay.NewError(kyapay.CodeChargeUnavailable, "", fmt.Errorf("store: %w", err)), g.price, g.hasPrice, g.claims)
	}
	if m.shared {
		m.remember(g.claims, b.Balance)
	}
	for retried := false; ; retried = true {
		switch b.State {
		case BeginMismatch:
			return Grant{}, idemReused(rt.format)
		case BeginInFlight:
			return Grant{}, idemConflict(rt.format, time.Second, false)
		case BeginDone:
			return m.replayGrant(ctx, rt, in, g, b), nil
		case BeginPending:
			rs, err := m.resolve(ctx, b.Pending, res.Attempt)
			switch {
			case rs.Record.State == BeginPending && m.lister == nil:
				// Nothing can resolve it here: the answer stays what the
				// first request got.
				return Grant{}, m.refusal(ctx, rt, in.Request, kyapay.NewError(kyapay.CodeChargeUnknown, "", errors.New("charge outcome unknown; the Charger cannot list charges")), g.price, g.hasPrice, g.claims)
			case rs.Record.State == BeginPending:
				wait := rs.Record.Pending.Unknown.Add(m.settle).Sub(now)
				if err != nil {
					wait = time.Second
				}
				return Grant{}, idemConflict(rt.format, wait, true)
			case rs.Record.State == 0 && !retried:
				// Resolved by someone else and gone: start afresh.
				sctx, cancel := m.storeCtx(ctx)
				b, err = m.store.Begin(sctx, res)
				cancel()
				if err != nil {
					return Grant{}, m.refusal(ctx, rt, in.Request, kyapay.NewError(kyapay.CodeChargeUnavailable, "", fmt.Errorf("store: %w", err)), g.price, g.hasPrice, g.claims)
				}
				continue
			case rs.Record.State == 0:
				return Grant{}, idemConflict(rt.format, time.Second, true)
			}
			b = rs.Record
			b.Balance = Balance{}
			continue
		case BeginReserved:
		default:
			return Grant{}, m.refusal(ctx, rt, in.Request, kyapay.NewError(kyapay.CodeInternal, "", fmt.Errorf("store: unknown state %d", b.State)), g.price, g.hasPrice, g.claims)
		}
		break
	}

	g.idem = &idemState{res: res, held: true}
	if b.Charged {
		// An earlier attempt charged and could not deliver: deliver now,
		// without charging.
		g.receipt, g.charged = receiptOf(b.Charge), true
		g.ctx = NewReceiptContext(g.ctx, g.receipt)
		return g, nil
	}
	if err := b.Balance.refuses(g.price, g.hasPrice, now); err != nil {
		ref := m.refusal(ctx, rt, in.Request, err, g.price, g.hasPrice, g.claims)
		_ = g.Finish(ctx, nil)
		return Grant{}, ref
	}
	if rt.timing == ChargeAfter {
		g.pending = true
		return g, nil
	}
	if err := m.chargeBefore(&g, in); err != nil {
		_ = g.Finish(ctx, nil)
		return Grant{}, err
	}
	return g, nil
}

// replayGrant answers a duplicate of a completed request.
func (m *Middleware) replayGrant(ctx context.Context, rt *Route, in Input, g Grant, b Begun) Grant {
	g.idem = &idemState{replay: b.Response}
	if g.idem.replay == nil {
		g.idem.replay = []byte{}
	}
	if b.Charged {
		g.receipt, g.charged = receiptOf(b.Charge), true
	}
	if m.observing(ctx, slog.LevelInfo) {
		e := m.event(EventReplayed, rt, in.Request, g.claims, g.price, g.hasPrice)
		e.Amount = b.Charge.Amount
		m.emit(ctx, e)
	}
	return g
}

// chargeBefore charges a ChargeBefore grant now, putting the receipt in
// its context, or returns the refusal.
func (m *Middleware) chargeBefore(g *Grant, in Input) error {
	cctx, cancel := context.WithTimeout(g.ctx, m.chargeTimeout)
	started := m.now()
	receipt, note, err := m.charge(cctx, g.rt, in.Request, in.Token, g.claims, g.price, g.hasPrice)
	cancel()
	m.afterCharge(g.ctx, g, receipt, note, started, err)
	if err != nil {
		return m.refusal(g.ctx, g.rt, in.Request, err, g.price, g.hasPrice, g.claims)
	}
	g.receipt, g.charged = receipt, true
	g.ctx = NewReceiptContext(g.ctx, receipt)
	m.onCharged(g.ctx, g.rt, in.Request, g.claims, receipt)
	return nil
}

// afterCharge records what a charge attempt taught. A grant holding an
// idempotency key keeps it for Finish (one Store operation for both);
// otherwise it goes to the Store now, and a charge of unknown outcome is
// recorded as pending for the reconciler.
func (m *Middleware) afterCharge(ctx context.Context, g *Grant, receipt charge.Receipt, note Note, started time.Time, err error) {
	var ke *kyapay.Error
	code := kyapay.Code("")
	if err != nil && errors.As(err, &ke) {
		code = ke.Code
	}
	if st := g.idem; st != nil {
		st.note = note
		switch code {
		case kyapay.CodeChargeUnknown:
			st.unknown, st.started, st.unknownAt = true, started, m.now()
		case kyapay.CodeChargeMismatch:
			st.short, st.shortCharge = true, chargeRef(receipt)
		}
		return
	}
	if !note.IsZero() {
		sctx, cancel := m.storeCtx(ctx)
		if err := m.store.Note(sctx, m.tokenRef(g.claims), note, m.now()); err != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: store: recording a charge failed",
				slog.String("jti", clip(g.claims.ID)), slog.String("error", clip(err.Error())))
		}
		cancel()
	}
	if code == kyapay.CodeChargeUnknown {
		p := PendingCharge{
			ID: rand.Text(), Token: m.tokenRef(g.claims), Route: routeName(g.rt, g.req),
			Amount: g.price, HasAmount: g.hasPrice, Started: started, Unknown: m.now(),
		}
		sctx, cancel := m.storeCtx(ctx)
		if err := m.store.AddPending(sctx, p); err != nil {
			m.log.LogAttrs(ctx, slog.LevelError, "kyapay: store: recording a charge of unknown outcome failed; reconcile this token's charges by hand",
				slog.String("jti", clip(g.claims.ID)), slog.String("error", clip(err.Error())))
		}
		cancel()
		m.startReconciler()
	}
}

// precheckShared asks a shared Store what other replicas learned about
// the token's balance. A Store failure refuses nothing: the charge API
// still declines a depleted token.
func (m *Middleware) precheckShared(ctx context.Context, c *kyapay.Claims, price kyapay.Amount, hasPrice bool) error {
	m.startReconciler() // other replicas' pending charges are this one's too
	sctx, cancel := m.storeCtx(ctx)
	b, err := m.store.Balance(sctx, m.tokenRef(c))
	cancel()
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "kyapay: store: reading a balance failed",
			slog.String("jti", clip(c.ID)), slog.String("error", clip(err.Error())))
		return nil
	}
	m.remember(c, b)
	return b.refuses(price, hasPrice, m.now())
}

// writeIdempotencyError answers an HTTP request refused for its
// idempotency key.
func writeIdempotencyError(w http.ResponseWriter, r *http.Request, e *IdempotencyError) {
	msg := "ERROR: " + e.Message
	d := idemDetail{Error: string(e.Code), Message: msg}
	h := w.Header()
	h.Set(CodeHeader, string(e.Code))
	if e.Status == http.StatusConflict {
		d.RetryAfterSeconds = int(max(e.RetryAfter, time.Second) / time.Second)
		h.Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds))
	}
	writeAnswer(w, r, e.format, e.Status, msg, &d)
}

// idemDetail is the structuredContent of an IdempotencyError's JSON body.
type idemDetail struct {
	Error             string `json:"error"`
	Message           string `json:"message"`
	RetryAfterSeconds int    `json:"retryAfterSeconds,omitempty"`
}
