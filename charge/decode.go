package charge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// errNotObject is returned when a 2xx body is not a JSON object.
var errNotObject = errors.New("response body is not a JSON object")

// decodeObject unmarshals body, which must be exactly one JSON object.
func decodeObject(body []byte, v any) error {
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return errNotObject
	}
	return json.Unmarshal(body, v)
}

// flexString reads an identifier that should be a JSON string but may be a
// number; null, absent and other types give "".
func flexString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw)
	}
	return ""
}

// optAmount is an amount that may be absent or null, decoded without a
// pointer allocation.
type optAmount struct {
	v   kyapay.Amount
	set bool
}

// UnmarshalJSON accepts null (leaving the amount unset) or anything
// kyapay.Amount accepts.
func (o *optAmount) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = optAmount{}
		return nil
	}
	if err := o.v.UnmarshalJSON(b); err != nil {
		return err
	}
	o.set = true
	return nil
}

// chargeBody is the 200 answer of POST /api/v1/tokens/charge.
type chargeBody struct {
	AmountCharged    optAmount       `json:"amountCharged"`
	RemainingBalance optAmount       `json:"remainingBalance"`
	TransactionID    json.RawMessage `json:"transactionId"`
}

// decodeReceipt parses a charge answer. amountCharged is required;
// remainingBalance and transactionId are optional.
func decodeReceipt(body []byte) (Receipt, error) {
	if r, ok := decodeReceiptFast(body); ok {
		return r, nil
	}
	return decodeReceiptSlow(body)
}

// decodeReceiptSlow is decodeReceipt through encoding/json.
func decodeReceiptSlow(body []byte) (Receipt, error) {
	var b chargeBody
	if err := decodeObject(body, &b); err != nil {
		return Receipt{}, err
	}
	if !b.AmountCharged.set {
		return Receipt{}, errors.New("response has no amountCharged")
	}
	return Receipt{
		AmountCharged:       b.AmountCharged.v,
		RemainingBalance:    b.RemainingBalance.v,
		HasRemainingBalance: b.RemainingBalance.set,
		TransactionID:       flexString(b.TransactionID),
	}, nil
}

// decodeReceiptFast decodes the common shape of a charge answer without
// reflection: one flat JSON object whose values are all strings of
// printable ASCII without escapes, or null, and with amountCharged set.
// It gives up (ok false) on anything else, including a key that matches a
// field name only case-insensitively, and decodeReceiptSlow decides; when
// it succeeds its result is the one decodeReceiptSlow gives (the amounts
// go through the same UnmarshalJSON, and duplicate keys keep the last
// value). FuzzDecodeReceiptFast checks the equivalence.
func decodeReceiptFast(body []byte) (r Receipt, ok bool) {
	var amount, balance optAmount
	var txID []byte // the raw transactionId value, nil if absent
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return Receipt{}, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return Receipt{}, false // no amountCharged
	}
	for {
		key, next, ok := fastString(body, i)
		if !ok {
			return Receipt{}, false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return Receipt{}, false
		}
		i = skipSpace(body, i+1)
		var val []byte
		if _, next, ok := fastString(body, i); ok {
			val, i = body[i:next], next
		} else if len(body)-i >= 4 && string(body[i:i+4]) == "null" {
			val, i = body[i:i+4], i+4
		} else {
			return Receipt{}, false
		}
		switch string(key) {
		case "amountCharged":
			if amount.UnmarshalJSON(val) != nil {
				return Receipt{}, false
			}
		case "remainingBalance":
			if balance.UnmarshalJSON(val) != nil {
				return Receipt{}, false
			}
		case "transactionId":
			txID = val
		default:
			k := string(key)
			if strings.EqualFold(k, "amountCharged") || strings.EqualFold(k, "remainingBalance") || strings.EqualFold(k, "transactionId") {
				return Receipt{}, false
			}
		}
		i = skipSpace(body, i)
		if i >= len(body) {
			return Receipt{}, false
		}
		if body[i] == '}' {
			break
		}
		if body[i] != ',' {
			return Receipt{}, false
		}
		i = skipSpace(body, i+1)
	}
	if skipSpace(body, i+1) != len(body) || !amount.set {
		return Receipt{}, false
	}
	r = Receipt{AmountCharged: amount.v, RemainingBalance: balance.v, HasRemainingBalance: balance.set}
	if len(txID) >= 2 && txID[0] == '"' {
		r.TransactionID = string(txID[1 : len(txID)-1])
	}
	return r, true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// fastString reads a JSON string at b[i] made only of printable ASCII
// without escapes, returning its contents and the index after its closing
// quote. ok is false for anything else.
func fastString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// introspectBody is the 200 answer of POST /api/v1/tokens/introspect.
type introspectBody struct {
	IsValid          *bool           `json:"isValid"`
	ValidationError  json.RawMessage `json:"validationError"`
	RemainingBalance optAmount       `json:"remainingBalance"`
}

// decodeIntrospection parses an introspection answer. isValid is required.
func decodeIntrospection(body []byte, sc scrubber) (Introspection, error) {
	var b introspectBody
	if err := decodeObject(body, &b); err != nil {
		return Introspection{}, err
	}
	if b.IsValid == nil {
		return Introspection{}, errors.New("response has no isValid")
	}
	raw, err := sc.scrubJSON(body)
	if err != nil {
		return Introspection{}, err
	}
	in := Introspection{IsValid: *b.IsValid, Raw: json.RawMessage(raw)}
	if v := b.ValidationError; len(v) > 0 && string(v) != "null" {
		s := flexString(v)
		if s == "" && v[0] != '"' {
			s = string(v) // an object or array: keep its text
		}
		in.ValidationError = sc.clean(s, maxMessageLen)
	}
	in.RemainingBalance, in.HasRemainingBalance = b.RemainingBalance.v, b.RemainingBalance.set
	return in, nil
}

// chargesBody is the 200 answer of GET /api/v1/tokens/{jti}/charges.
type chargesBody struct {
	Data           []chargeRecordBody `json:"data"`
	Charges        []chargeRecordBody `json:"charges"` // tolerated alias of data
	NextPageCursor *string            `json:"nextPageCursor"`
}

type chargeRecordBody struct {
	TokenID   json.RawMessage `json:"tokenId"`
	ChargeID  json.RawMessage `json:"chargeId"`
	Value     optAmount       `json:"value"`
	ChargedAt *string         `json:"chargedAt"`
}

// decodeChargesPage parses one page of token charges. Every record needs a
// value; chargedAt, when present, must be RFC 3339.
func decodeChargesPage(body []byte) (ChargesPage, error) {
	var b chargesBody
	if err := decodeObject(body, &b); err != nil {
		return ChargesPage{}, err
	}
	data := b.Data
	if data == nil {
		data = b.Charges
	}
	p := ChargesPage{Charges: make([]ChargeRecord, 0, len(data))}
	for i, r := range data {
		if !r.Value.set {
			return ChargesPage{}, fmt.Errorf("charge record %d has no value", i)
		}
		rec := ChargeRecord{
			TokenID:  flexString(r.TokenID),
			ChargeID: flexString(r.ChargeID),
			Amount:   r.Value.v,
		}
		if r.ChargedAt != nil && *r.ChargedAt != "" {
			t, err := time.Parse(time.RFC3339Nano, *r.ChargedAt)
			if err != nil {
				return ChargesPage{}, fmt.Errorf("charge record %d: chargedAt is not RFC 3339", i)
			}
			rec.ChargedAt = t
		}
		p.Charges = append(p.Charges, rec)
	}
	if b.NextPageCursor != nil {
		p.NextPageCursor = *b.NextPageCursor
	}
	return p, nil
}

// envelope is Skyfire's error body:
// {"code":"...","message":"...","details":{"field":{"message":"..."}}}.
// Some services nest it as {"error":{"code":...,"message":...}} or give
// {"error":"..."}; both are tolerated.
type envelope struct {
	Code    json.RawMessage            `json:"code"`
	Message json.RawMessage            `json:"message"`
	Error   json.RawMessage            `json:"error"`
	Details map[string]json.RawMessage `json:"details"`
}

// decodeError parses a non-2xx body into code, message and details, all
// scrubbed and clipped. A body that is not an envelope is quoted, clipped,
// as the message.
func decodeError(body []byte, sc scrubber) (code, message string, details map[string]string) {
	var e envelope
	if err := decodeObject(body, &e); err != nil {
		return "", sc.clean(string(body), maxMessageLen), nil
	}
	if len(e.Error) > 0 && e.Error[0] == '{' {
		var inner envelope
		if decodeObject(e.Error, &inner) == nil {
			if len(e.Code) == 0 {
				e.Code = inner.Code
			}
			if len(e.Message) == 0 {
				e.Message = inner.Message
			}
			if e.Details == nil {
				e.Details = inner.Details
			}
		}
	}
	code = sc.clean(flexString(e.Code), maxCodeLen)
	message = sc.clean(flexString(e.Message), maxMessageLen)
	if message == "" {
		message = sc.clean(flexString(e.Error), maxMessageLen)
	}
	fields := make([]string, 0, len(e.Details))
	for field := range e.Details {
		fields = append(fields, field)
	}
	sort.Strings(fields)
	for _, field := range fields {
		if len(details) >= maxDetails {
			break
		}
		raw := e.Details[field]
		msg := flexString(raw)
		if msg == "" {
			var d struct {
				Message json.RawMessage `json:"message"`
			}
			if decodeObject(raw, &d) == nil {
				msg = flexString(d.Message)
			}
		}
		if details == nil {
			details = make(map[string]string)
		}
		details[sc.clean(field, maxDetailLen)] = sc.clean(msg, maxDetailLen)
	}
	if code == "" && message == "" && details == nil && len(bytes.TrimSpace(body)) > 2 {
		// A JSON object, but not an envelope: quote it.
		message = sc.clean(string(body), maxMessageLen)
	}
	return code, message, details
}

// amountErrors are the sentinels of kyapay.ParseAmount, whose own errors
// quote the offending value.
var amountErrors = []error{kyapay.ErrAmountSyntax, kyapay.ErrAmountPrecision, kyapay.ErrAmountNegative, kyapay.ErrAmountRange}

// wrap returns a decode error fit for an *Error: an amount error becomes
// its sentinel (without the quoted value); any other error's text is
// scrubbed of secrets and clipped, and the original dropped, since its text
// may quote a hostile response.
func (sc scrubber) wrap(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range amountErrors {
		if errors.Is(err, s) {
			return s
		}
	}
	return errors.New(sc.clean(err.Error(), maxMessageLen))
}
