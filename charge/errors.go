package charge

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Outcome says what is known about money after a failed call. It is the
// first thing to look at when a charge fails:
//
//   - [OutcomeDeclined]: Skyfire answered with a definite refusal; nothing
//     was charged. The agent may be told to pay again (for example with a
//     402 and a fresh token).
//   - [OutcomeUnknown]: the charge may or may not have happened. Do NOT tell
//     the agent to pay again; record the token and reconcile later (see
//     [Client.TokenCharges]).
//   - [OutcomeNotSent]: the request provably never left this process;
//     nothing was charged and the call may be retried.
//
// The zero value is [OutcomeUnknown], so an Outcome that was never set
// errs on the safe side.
type Outcome uint8

// The outcomes of a failed call.
const (
	// OutcomeUnknown: the charge may or may not have happened: a timeout or
	// lost connection after the request was (or may have been) sent, a 5xx
	// answer, an unexpected 1xx/3xx status, or a 2xx answer whose body is
	// too large or cannot be parsed.
	OutcomeUnknown Outcome = iota
	// OutcomeDeclined: the API answered with a 4xx refusal; nothing was
	// charged.
	OutcomeDeclined
	// OutcomeNotSent: nothing left this process (invalid arguments, DNS or
	// dial failure, context done before a connection was obtained); nothing
	// was charged and it is safe to retry.
	OutcomeNotSent
)

// String returns "unknown", "declined" or "not_sent".
func (o Outcome) String() string {
	switch o {
	case OutcomeUnknown:
		return "unknown"
	case OutcomeDeclined:
		return "declined"
	case OutcomeNotSent:
		return "not_sent"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Reason refines an [Outcome] with why the call failed. Reasons are for
// choosing a response (402 vs 401 vs 503) and for logs; the money decision
// rests on the Outcome alone.
type Reason uint8

// The reasons a call can fail. The zero value is [ReasonOther].
const (
	// ReasonOther: a 4xx status with no more specific meaning.
	ReasonOther Reason = iota
	// ReasonInsufficientBalance: the API said that the token's balance
	// does not cover the charge: code INSUFFICIENT_BALANCE,
	// INSUFFICIENT_FUNDS or TOKEN_DEPLETED, or code PAYMENT_ERROR or
	// PAYMENT_DECLINED (or HTTP 402 without a code) whose message names
	// the balance ("balance", "insufficient", "exceeds", "depleted",
	// "exhausted", "not enough", "funds") and no transient failure. This
	// is evidence that the token cannot pay this amount; see
	// [ReasonPaymentFailed] for the other 402s.
	ReasonInsufficientBalance
	// ReasonTokenRejected: code FORBIDDEN or HTTP 403: the API refused
	// this token for this seller.
	ReasonTokenRejected
	// ReasonInvalidRequest: code BAD_REQUEST, VALIDATION_ERROR or NOT_FOUND,
	// or HTTP 400/404/422; also arguments refused by this package before
	// sending.
	ReasonInvalidRequest
	// ReasonNotEligible: code NOT_ELIGIBLE or HTTP 409 (for example a seller
	// service pending approval).
	ReasonNotEligible
	// ReasonRateLimited: HTTP 429 or code RATE_LIMITED / TOO_MANY_REQUESTS.
	ReasonRateLimited
	// ReasonServer: HTTP 5xx.
	ReasonServer
	// ReasonTransport: DNS, dial, TLS, connection, timeout or cancellation
	// failures; see [Error.Err] and use errors.Is with
	// context.DeadlineExceeded or context.Canceled.
	ReasonTransport
	// ReasonBadResponse: the API answered 2xx with a body that is too large
	// or cannot be parsed, or with an unexpected 1xx/3xx status; also
	// pagination that would not end ([Client.AllTokenCharges]).
	ReasonBadResponse
	// ReasonPaymentFailed: a payment decline that gives no evidence about
	// the balance: code PAYMENT_ERROR or PAYMENT_DECLINED, or HTTP 402
	// without a code, whose message does not name the balance or names a
	// transient failure ("timeout", "timed out", "temporarily",
	// "unavailable", "try again", "retry", "network", "connection").
	// Skyfire documents PAYMENT_ERROR as "payment is required or could not
	// be completed". Nothing was charged, and the token's balance may be
	// intact: do not remember the token as spent; a later charge may
	// succeed.
	ReasonPaymentFailed
	// ReasonAPIKeyRejected: code NOT_AUTHORIZED or UNAUTHORIZED, or HTTP
	// 401. Skyfire documents NOT_AUTHORIZED as "key not recognized / wrong
	// environment"; a token that passed local verification leaves the key
	// as the likely cause. When the Client has a [Config.KeySource], it has
	// already re-read the key and, if the source gave another one, tried
	// again once with it. Nothing was charged. This is the seller's
	// problem, not the buyer's: answer 503, and alert an operator.
	ReasonAPIKeyRejected
)

var reasonNames = [...]string{
	ReasonOther:               "other",
	ReasonInsufficientBalance: "insufficient_balance",
	ReasonTokenRejected:       "token_rejected",
	ReasonInvalidRequest:      "invalid_request",
	ReasonNotEligible:         "not_eligible",
	ReasonRateLimited:         "rate_limited",
	ReasonServer:              "server_error",
	ReasonTransport:           "transport",
	ReasonBadResponse:         "bad_response",
	ReasonPaymentFailed:       "payment_failed",
	ReasonAPIKeyRejected:      "api_key_rejected",
}

// String returns a stable snake_case name such as "insufficient_balance".
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Sentinels matched by [Error.Is], so that errors.Is(err, ErrDeclined) and
// friends work on every *Error whatever its message or cause.
var (
	// ErrDeclined matches errors whose Outcome is OutcomeDeclined.
	ErrDeclined = errors.New("charge: declined")
	// ErrUnknownOutcome matches errors whose Outcome is OutcomeUnknown.
	ErrUnknownOutcome = errors.New("charge: outcome unknown")
	// ErrNotSent matches errors whose Outcome is OutcomeNotSent.
	ErrNotSent = errors.New("charge: not sent")
	// ErrInsufficientBalance matches errors whose Reason is
	// ReasonInsufficientBalance (always with OutcomeDeclined).
	ErrInsufficientBalance = errors.New("charge: insufficient balance")
)

// Error is the error returned by every [Client] call. It never contains the
// token or the API key: upstream text is scrubbed of both and clipped.
//
// Decide what to do about money with Outcome (or [OutcomeOf], or errors.Is
// with [ErrDeclined], [ErrUnknownOutcome], [ErrNotSent]); choose a response
// with Reason.
type Error struct {
	// Op is the call that failed: "charge", "introspect" or "charges".
	Op string
	// Outcome says whether money may have moved.
	Outcome Outcome
	// Reason says why the call failed.
	Reason Reason
	// Status is the HTTP status, or 0 if no response was received.
	Status int
	// Code is the Skyfire error code from the response envelope
	// ("PAYMENT_ERROR", ...), if any.
	Code string
	// Message is the envelope's message, or a clipped part of a non-JSON
	// error body, or a description of a local failure.
	Message string
	// Details maps a field name to its validation message, from the
	// envelope's "details" (usually only on VALIDATION_ERROR).
	Details map[string]string
	// RetryAfter is the wait the API asked for with Retry-After on a 429
	// (or 503) answer, clamped to an hour; zero without one. A 429 whose
	// Retry-After fitted in the call's timeout was already waited for and
	// retried, so a RetryAfter here is one the caller can pass on (for
	// example as the Retry-After of its own 503).
	RetryAfter time.Duration
	// Err is the underlying cause (transport error, context error, decode
	// error, or the failure to re-read the API key after a 401), or nil.
	Err error
}

// Error returns a one-line description such as
// "charge: charge declined (insufficient_balance): HTTP 402 PAYMENT_ERROR: Charge amount exceeds token value".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("charge: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteByte(' ')
	}
	switch e.Outcome {
	case OutcomeDeclined:
		b.WriteString("declined")
	case OutcomeNotSent:
		b.WriteString("not sent")
	default:
		b.WriteString("outcome unknown")
	}
	b.WriteString(" (")
	b.WriteString(e.Reason.String())
	b.WriteByte(')')
	if e.Status != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
		if e.Code != "" {
			b.WriteByte(' ')
			b.WriteString(e.Code)
		}
	} else if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Details) > 0 {
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" [")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(e.Details[k])
		}
		b.WriteByte(']')
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteByte(')')
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// GoString gives %#v a readable form built from the fields; like Error it
// holds no secret.
func (e *Error) GoString() string {
	s := "&charge.Error{Op: " + strconv.Quote(e.Op) +
		", Outcome: " + e.Outcome.String() +
		", Reason: " + e.Reason.String() +
		", Status: " + strconv.Itoa(e.Status) +
		", Code: " + strconv.Quote(e.Code) +
		", Message: " + strconv.Quote(e.Message)
	if len(e.Details) > 0 {
		s += ", Details: " + strconv.Itoa(len(e.Details)) + " entries"
	}
	if e.RetryAfter > 0 {
		s += ", RetryAfter: " + e.RetryAfter.String()
	}
	if e.Err != nil {
		s += ", Err: " + strconv.Quote(e.Err.Error())
	}
	return s + "}"
}

// Unwrap returns the underlying cause, so errors.Is(err,
// context.DeadlineExceeded) works on a timed-out call.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is one of this package's sentinels and e
// matches it: [ErrDeclined], [ErrUnknownOutcome] and [ErrNotSent] by
// Outcome, [ErrInsufficientBalance] by Reason.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrDeclined:
		return e.Outcome == OutcomeDeclined
	case ErrUnknownOutcome:
		return e.Outcome == OutcomeUnknown
	case ErrNotSent:
		return e.Outcome == OutcomeNotSent
	case ErrInsufficientBalance:
		return e.Reason == ReasonInsufficientBalance
	}
	return false
}

// OutcomeOf returns the Outcome of the first [*Error] in err's chain. Any
// other error, and nil, give [OutcomeUnknown]: when in doubt, assume money
// may have moved. Check err != nil before asking.
func OutcomeOf(err error) Outcome {
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome
	}
	return OutcomeUnknown
}

// ReasonOf returns the Reason of the first [*Error] in err's chain, or
// [ReasonOther] if there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonOther
}

// reasonForStatus classifies a 4xx answer. The envelope code wins over the
// status, except that 429 always means rate limiting. A payment decline is
// told apart by its message (see [paymentReason]).
func reasonForStatus(status int, code, message string) Reason {
	if status == 429 {
		return ReasonRateLimited
	}
	switch strings.ToUpper(code) {
	case "INSUFFICIENT_BALANCE", "INSUFFICIENT_FUNDS", "TOKEN_DEPLETED":
		return ReasonInsufficientBalance
	case "PAYMENT_ERROR", "PAYMENT_DECLINED":
		return paymentReason(message)
	case "NOT_AUTHORIZED", "UNAUTHORIZED":
		return ReasonAPIKeyRejected
	case "FORBIDDEN":
		return ReasonTokenRejected
	case "BAD_REQUEST", "VALIDATION_ERROR", "NOT_FOUND":
		return ReasonInvalidRequest
	case "NOT_ELIGIBLE":
		return ReasonNotEligible
	case "RATE_LIMITED", "TOO_MANY_REQUESTS":
		return ReasonRateLimited
	}
	switch status {
	case 402:
		return paymentReason(message)
	case 401:
		return ReasonAPIKeyRejected
	case 403:
		return ReasonTokenRejected
	case 400, 404, 422:
		return ReasonInvalidRequest
	case 409:
		return ReasonNotEligible
	}
	return ReasonOther
}

// Words that make a payment decline's message evidence of a transient
// failure, or of the balance. Transient words win: "timeout while reading
// the balance" says nothing about the balance.
var (
	transientWords = []string{"timeout", "timed out", "time out", "temporar", "unavailable",
		"try again", "retry", "network", "connection"}
	balanceWords = []string{"balance", "insufficient", "exceed", "depleted", "exhausted",
		"not enough", "funds"}
)

// paymentReason classifies a payment decline (PAYMENT_ERROR,
// PAYMENT_DECLINED, 402) by its message: [ReasonInsufficientBalance] only
// when the message names the balance and no transient failure, otherwise
// [ReasonPaymentFailed].
func paymentReason(message string) Reason {
	m := strings.ToLower(message)
	for _, w := range transientWords {
		if strings.Contains(m, w) {
			return ReasonPaymentFailed
		}
	}
	for _, w := range balanceWords {
		if strings.Contains(m, w) {
			return ReasonInsufficientBalance
		}
	}
	return ReasonPaymentFailed
}

// classifyStatus maps a non-2xx HTTP status to an outcome and reason.
func classifyStatus(status int, code, message string) (Outcome, Reason) {
	switch {
	case status >= 400 && status < 500:
		return OutcomeDeclined, reasonForStatus(status, code, message)
	case status >= 500:
		return OutcomeUnknown, ReasonServer
	default: // 1xx, 3xx (redirects are not followed)
		return OutcomeUnknown, ReasonBadResponse
	}
}
