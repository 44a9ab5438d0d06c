package charge

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// Receipt is Skyfire's answer to a successful charge.
type Receipt struct {
	// AmountCharged is the amount moved from the buyer to the seller, as
	// reported by Skyfire. It normally equals the requested amount (or the
	// service price in [Client.ChargeServicePrice]).
	AmountCharged kyapay.Amount
	// RemainingBalance is the token's balance after the charge; valid only
	// if HasRemainingBalance.
	RemainingBalance kyapay.Amount
	// HasRemainingBalance reports whether the answer carried
	// remainingBalance.
	HasRemainingBalance bool
	// TransactionID is the undocumented transactionId, or "" if absent.
	TransactionID string
	// Requested is the amount that was asked for, valid only if
	// HasRequested (a service-price charge asks for no amount). The
	// middleware sets it; the client leaves it to its caller.
	Requested    kyapay.Amount
	HasRequested bool
}

// Mismatch reports whether Skyfire charged a different amount than was
// asked for. Money has moved either way; the middleware logs it at Error
// with the jti and withholds the content when less was charged.
func (r Receipt) Mismatch() bool {
	return r.HasRequested && r.AmountCharged.Cmp(r.Requested) != 0
}

// Introspection is Skyfire's view of a token.
type Introspection struct {
	// IsValid reports whether Skyfire considers the token valid.
	IsValid bool
	// ValidationError is Skyfire's reason when IsValid is false (scrubbed
	// of anything token-shaped and clipped).
	ValidationError string
	// RemainingBalance is the token's balance; valid only if
	// HasRemainingBalance.
	RemainingBalance kyapay.Amount
	// HasRemainingBalance reports whether the answer carried
	// remainingBalance (the field name is not documented by Skyfire).
	HasRemainingBalance bool
	// Raw is the whole JSON answer, for fields this package does not
	// model, scrubbed like errors are: any string (or number) that holds
	// the token, the API key or a piece of 16 characters of either reads
	// "[REDACTED]". When something was scrubbed, Raw is re-encoded
	// (object keys sorted); otherwise it is the answer as received.
	Raw json.RawMessage
}

// ChargesPage is one page of a token's charges.
type ChargesPage struct {
	// Charges are the charges on this page.
	Charges []ChargeRecord
	// NextPageCursor is the cursor of the next page, or "" on the last page.
	NextPageCursor string
}

// ChargeRecord is one charge made on a token.
type ChargeRecord struct {
	// TokenID is the token's jti.
	TokenID string
	// ChargeID identifies the charge.
	ChargeID string
	// Amount is the amount charged (JSON "value").
	Amount kyapay.Amount
	// ChargedAt is when the charge was made; zero if the answer omitted it.
	ChargedAt time.Time
}

// Charge charges amount (which must be greater than zero) to the buyer's
// token with POST /api/v1/tokens/charge, sending chargeAmount as an exact
// decimal string.
//
// On failure the error is an [*Error]. Its Outcome decides what to tell the
// agent: [OutcomeDeclined] (nothing charged; e.g. ErrInsufficientBalance),
// [OutcomeUnknown] (may have been charged; never ask the agent to pay
// again) or [OutcomeNotSent] (nothing charged). A call is retried only
// while nothing has been sent; a charge that may have been sent is never
// retried, because Skyfire has no idempotency key.
func (c *Client) Charge(ctx context.Context, token string, amount kyapay.Amount) (Receipt, error) {
	if amount.IsZero() {
		return Receipt{}, invalidArgument("charge", "amount must be greater than zero")
	}
	return c.charge(ctx, token, &amount)
}

// ChargeServicePrice charges the token without a chargeAmount, so Skyfire
// charges the seller service's PAY_PER_USE price. Errors are as for
// [Client.Charge].
func (c *Client) ChargeServicePrice(ctx context.Context, token string) (Receipt, error) {
	return c.charge(ctx, token, nil)
}

func (c *Client) charge(ctx context.Context, token string, amount *kyapay.Amount) (Receipt, error) {
	const op = "charge"
	if err := checkToken(op, token); err != nil {
		return Receipt{}, err
	}
	body := make([]byte, 0, len(token)+48)
	body = append(body, `{"token":`...)
	body = appendJSONString(body, token)
	if amount != nil {
		body = append(body, `,"chargeAmount":"`...)
		body = appendAmount(body, *amount)
		body = append(body, '"')
	}
	body = append(body, '}')

	res, sc, cerr := c.exchange(ctx, op, c.chargeReq, "", body, token)
	if cerr != nil {
		return Receipt{}, cerr
	}
	if e := c.check(op, res, sc); e != nil {
		return Receipt{}, e
	}
	r, err := decodeReceipt(res.body)
	if err != nil {
		return Receipt{}, badResponse(op, res.status, "cannot parse charge response", sc.wrap(err))
	}
	return r, nil
}

// Introspect asks Skyfire whether token is valid and, if it says so, for
// its remaining balance (POST /api/v1/tokens/introspect). An invalid token
// is normally a successful call with IsValid false.
func (c *Client) Introspect(ctx context.Context, token string) (Introspection, error) {
	const op = "introspect"
	if err := checkToken(op, token); err != nil {
		return Introspection{}, err
	}
	body := make([]byte, 0, len(token)+12)
	body = append(body, `{"token":`...)
	body = appendJSONString(body, token)
	body = append(body, '}')

	res, sc, cerr := c.exchange(ctx, op, c.introspectReq, "", body, token)
	if cerr != nil {
		return Introspection{}, cerr
	}
	if e := c.check(op, res, sc); e != nil {
		return Introspection{}, e
	}
	in, err := decodeIntrospection(res.body, sc)
	if err != nil {
		return Introspection{}, badResponse(op, res.status, "cannot parse introspection response", sc.wrap(err))
	}
	return in, nil
}

// TokenCharges returns one page of the charges made on the token whose jti
// is given (GET /api/v1/tokens/{jti}/charges?size=&pageCursor=). jti is
// escaped as one path segment. pageCursor "" asks for the first page; size
// <= 0 leaves the page size to the server.
//
// Skyfire documents this endpoint for buyer agents; whether a seller key
// may read it is not confirmed.
func (c *Client) TokenCharges(ctx context.Context, jti string, pageCursor string, size int) (ChargesPage, error) {
	const op = "charges"
	switch {
	case jti == "":
		return ChargesPage{}, invalidArgument(op, "jti is empty")
	case jti == "." || jti == "..":
		return ChargesPage{}, invalidArgument(op, "jti must not be a dot segment")
	case len(jti) > maxJTIBytes:
		return ChargesPage{}, invalidArgument(op, "jti is too long")
	case len(pageCursor) > maxCursorBytes:
		return ChargesPage{}, invalidArgument(op, "page cursor is too long")
	}
	target := c.tokensURL + url.PathEscape(jti) + "/charges"
	if size > 0 || pageCursor != "" {
		q := make(url.Values, 2)
		if size > 0 {
			q.Set("size", strconv.Itoa(size))
		}
		if pageCursor != "" {
			q.Set("pageCursor", pageCursor)
		}
		target += "?" + q.Encode()
	}
	res, sc, cerr := c.exchange(ctx, op, nil, target, nil, "")
	if cerr != nil {
		return ChargesPage{}, cerr
	}
	if e := c.check(op, res, sc); e != nil {
		return ChargesPage{}, e
	}
	p, err := decodeChargesPage(res.body)
	if err != nil {
		return ChargesPage{}, badResponse(op, res.status, "cannot parse charges response", sc.wrap(err))
	}
	return p, nil
}

// Pagination bounds of [Client.AllTokenCharges].
const (
	allChargesPageSize = 100
	allChargesMaxPages = 1000
)

// AllTokenCharges follows the page cursors of [Client.TokenCharges] and
// returns every charge on the token. It stops with an error after 1000
// pages or when a cursor repeats. On error, the charges read so far are
// returned with it.
func (c *Client) AllTokenCharges(ctx context.Context, jti string) ([]ChargeRecord, error) {
	var all []ChargeRecord
	seen := make(map[string]struct{})
	cursor := ""
	for page := 0; ; page++ {
		if page == allChargesMaxPages {
			return all, &Error{Op: "charges", Outcome: OutcomeUnknown, Reason: ReasonBadResponse,
				Message: "more than " + strconv.Itoa(allChargesMaxPages) + " pages of charges"}
		}
		p, err := c.TokenCharges(ctx, jti, cursor, allChargesPageSize)
		if err != nil {
			return all, err
		}
		all = append(all, p.Charges...)
		if p.NextPageCursor == "" {
			return all, nil
		}
		if _, dup := seen[p.NextPageCursor]; dup || p.NextPageCursor == cursor {
			return all, &Error{Op: "charges", Outcome: OutcomeUnknown, Reason: ReasonBadResponse,
				Message: "page cursor repeated; pagination would not end"}
		}
		seen[p.NextPageCursor] = struct{}{}
		cursor = p.NextPageCursor
	}
}

// check classifies a received response: nil for a readable 2xx body,
// otherwise the *Error to return.
func (c *Client) check(op string, res response, sc scrubber) *Error {
	if res.status < 200 || res.status > 299 {
		e := &Error{Op: op, Status: res.status}
		switch {
		case res.tooLarge:
			e.Message = "error body larger than " + strconv.FormatInt(c.maxBody, 10) + " bytes"
		case res.readErr != nil:
			e.Message = "error body unreadable"
			e.Err = res.readErr
		default:
			e.Code, e.Message, e.Details = decodeError(res.body, sc)
		}
		e.Outcome, e.Reason = classifyStatus(res.status, e.Code, e.Message)
		if d, ok := parseRetryAfter(res.retryAfter, c.now()); ok {
			e.RetryAfter = d
		}
		if res.keyErr != nil && e.Err == nil {
			e.Err = res.keyErr
		}
		return e
	}
	switch {
	case res.readErr != nil:
		return &Error{Op: op, Outcome: OutcomeUnknown, Reason: ReasonTransport, Status: res.status,
			Message: "response body unreadable", Err: res.readErr}
	case res.tooLarge:
		return badResponse(op, res.status, "response body larger than "+strconv.FormatInt(c.maxBody, 10)+" bytes", nil)
	}
	return nil
}

func badResponse(op string, status int, msg string, err error) *Error {
	return &Error{Op: op, Outcome: OutcomeUnknown, Reason: ReasonBadResponse, Status: status, Message: msg, Err: err}
}

func invalidArgument(op, msg string) *Error {
	return &Error{Op: op, Outcome: OutcomeNotSent, Reason: ReasonInvalidRequest, Message: msg}
}

func checkToken(op, token string) *Error {
	switch {
	case token == "":
		return invalidArgument(op, "token is empty")
	case len(token) > maxTokenBytes:
		return invalidArgument(op, "token is too long")
	}
	return nil
}

// appendAmount appends a in the form of [kyapay.Amount.String] (the
// shortest exact decimal), without the allocation of String.
func appendAmount(b []byte, a kyapay.Amount) []byte {
	const unit = 1_000_000
	m := a.Micros()
	b = strconv.AppendInt(b, m/unit, 10)
	frac := m % unit
	if frac == 0 {
		return b
	}
	var digits [kyapay.AmountDecimals]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := len(digits)
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// appendJSONString appends s as a JSON string. KYAPay tokens are plain
// ASCII and take the fast path; anything else is escaped by encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
