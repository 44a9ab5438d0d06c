package charge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
)

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"declined", &Error{Op: "charge", Outcome: OutcomeDeclined, Reason: ReasonInsufficientBalance, Status: 402,
			Code: "PAYMENT_ERROR", Message: "Charge amount exceeds token value"},
			"charge: charge declined (insufficient_balance): HTTP 402 PAYMENT_ERROR: Charge amount exceeds token value"},
		{"details sorted", &Error{Op: "charge", Outcome: OutcomeDeclined, Reason: ReasonInvalidRequest, Status: 422,
			Code: "VALIDATION_ERROR", Message: "bad", Details: map[string]string{"z": "last", "a": "first"}},
			"charge: charge declined (invalid_request): HTTP 422 VALIDATION_ERROR: bad [a: first; z: last]"},
		{"unknown with cause", &Error{Op: "introspect", Outcome: OutcomeUnknown, Reason: ReasonTransport,
			Message: "request may have been sent", Err: io.ErrUnexpectedEOF},
			"charge: introspect outcome unknown (transport): request may have been sent: unexpected EOF"},
		{"not sent", &Error{Op: "charges", Outcome: OutcomeNotSent, Reason: ReasonInvalidRequest, Message: "jti is empty"},
			"charge: charges not sent (invalid_request): jti is empty"},
		{"code without status", &Error{Outcome: OutcomeUnknown, Code: "X"}, "charge: outcome unknown (other): X"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: got %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	declined := &Error{Outcome: OutcomeDeclined, Reason: ReasonInsufficientBalance}
	wrapped := fmt.Errorf("middleware: %w", declined)
	timeout := &Error{Outcome: OutcomeUnknown, Reason: ReasonTransport, Err: fmt.Errorf("x: %w", context.DeadlineExceeded)}
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"declined is ErrDeclined", declined, ErrDeclined, true},
		{"declined is ErrInsufficientBalance", declined, ErrInsufficientBalance, true},
		{"declined is not ErrUnknownOutcome", declined, ErrUnknownOutcome, false},
		{"declined is not ErrNotSent", declined, ErrNotSent, false},
		{"wrapped declined", wrapped, ErrInsufficientBalance, true},
		{"token rejected is not insufficient", &Error{Outcome: OutcomeDeclined, Reason: ReasonTokenRejected}, ErrInsufficientBalance, false},
		{"timeout is unknown", timeout, ErrUnknownOutcome, true},
		{"timeout is DeadlineExceeded", timeout, context.DeadlineExceeded, true},
		{"timeout is not Canceled", timeout, context.Canceled, false},
		{"not sent", &Error{Outcome: OutcomeNotSent}, ErrNotSent, true},
		{"zero Error is unknown", &Error{}, ErrUnknownOutcome, true},
		{"unrelated target", declined, io.EOF, false},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("%s: errors.Is = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Outcome
		rsn  Reason
	}{
		{"nil", nil, OutcomeUnknown, ReasonOther},
		{"foreign error fails safe", io.EOF, OutcomeUnknown, ReasonOther},
		{"context error fails safe", context.Canceled, OutcomeUnknown, ReasonOther},
		{"declined", &Error{Outcome: OutcomeDeclined, Reason: ReasonNotEligible}, OutcomeDeclined, ReasonNotEligible},
		{"wrapped not sent", fmt.Errorf("a: %w", &Error{Outcome: OutcomeNotSent, Reason: ReasonTransport}), OutcomeNotSent, ReasonTransport},
	}
	for _, tt := range tests {
		if got := OutcomeOf(tt.err); got != tt.want {
			t.Errorf("%s: OutcomeOf = %v; want %v", tt.name, got, tt.want)
		}
		if got := ReasonOf(tt.err); got != tt.rsn {
			t.Errorf("%s: ReasonOf = %v; want %v", tt.name, got, tt.rsn)
		}
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	for o, want := range map[Outcome]string{OutcomeUnknown: "unknown", OutcomeDeclined: "declined", OutcomeNotSent: "not_sent", 9: "outcome(9)"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q; want %q", o, got, want)
		}
	}
	for r := ReasonOther; r <= ReasonAPIKeyRejected; r++ {
		if s := r.String(); s == "" || strings.HasPrefix(s, "reason(") {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
	}
	if got := Reason(200).String(); got != "reason(200)" {
		t.Errorf("got %q", got)
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status  int
		code    string
		message string
		outcome Outcome
		reason  Reason
	}{
		{100, "", "", OutcomeUnknown, ReasonBadResponse},
		{301, "", "", OutcomeUnknown, ReasonBadResponse},
		{308, "PAYMENT_ERROR", "", OutcomeUnknown, ReasonBadResponse},
		{400, "", "", OutcomeDeclined, ReasonInvalidRequest},
		{400, "payment_declined", "", OutcomeDeclined, ReasonPaymentFailed},
		{400, "payment_declined", "Insufficient funds", OutcomeDeclined, ReasonInsufficientBalance},
		{400, "INSUFFICIENT_FUNDS", "", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "INSUFFICIENT_BALANCE", "network timeout", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "TOKEN_DEPLETED", "", OutcomeDeclined, ReasonInsufficientBalance},
		{401, "", "", OutcomeDeclined, ReasonAPIKeyRejected},
		{403, "UNAUTHORIZED", "", OutcomeDeclined, ReasonAPIKeyRejected},
		{402, "", "", OutcomeDeclined, ReasonPaymentFailed},
		{402, "", "Charge amount exceeds token value", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "PAYMENT_ERROR", "Charge amount exceeds token value", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "PAYMENT_ERROR", "charge amount 5 exceeds the remaining balance 1", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "PAYMENT_ERROR", "The balance on the given 'pay' token is not enough.", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "", "ERROR: The given pay token is depleted.", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "PAYMENT_ERROR", "Token balance exhausted", OutcomeDeclined, ReasonInsufficientBalance},
		{402, "PAYMENT_ERROR", "payment is required or could not be completed", OutcomeDeclined, ReasonPaymentFailed},
		{402, "PAYMENT_ERROR", "network timeout", OutcomeDeclined, ReasonPaymentFailed},
		{402, "PAYMENT_ERROR", "Payment provider timed out", OutcomeDeclined, ReasonPaymentFailed},
		{402, "PAYMENT_ERROR", "Request timeout while checking the balance", OutcomeDeclined, ReasonPaymentFailed},
		{402, "PAYMENT_ERROR", "settlement network temporarily unavailable, try again", OutcomeDeclined, ReasonPaymentFailed},
		{402, "payment_error", "upstream connection reset", OutcomeDeclined, ReasonPaymentFailed},
		{402, "PAYMENT_ERROR", "", OutcomeDeclined, ReasonPaymentFailed},
		{402, "NOT_AUTHORIZED", "", OutcomeDeclined, ReasonAPIKeyRejected},
		{401, "FORBIDDEN", "", OutcomeDeclined, ReasonTokenRejected},
		{403, "", "", OutcomeDeclined, ReasonTokenRejected},
		{404, "", "", OutcomeDeclined, ReasonInvalidRequest},
		{405, "", "", OutcomeDeclined, ReasonOther},
		{409, "", "", OutcomeDeclined, ReasonNotEligible},
		{409, "NOT_ELIGIBLE", "", OutcomeDeclined, ReasonNotEligible},
		{422, "", "", OutcomeDeclined, ReasonInvalidRequest},
		{429, "PAYMENT_ERROR", "", OutcomeDeclined, ReasonRateLimited},
		{499, "", "", OutcomeDeclined, ReasonOther},
		{500, "", "", OutcomeUnknown, ReasonServer},
		{503, "NOT_AUTHORIZED", "", OutcomeUnknown, ReasonServer},
		{599, "", "", OutcomeUnknown, ReasonServer},
		{600, "", "", OutcomeUnknown, ReasonServer},
	}
	for _, tt := range tests {
		o, r := classifyStatus(tt.status, tt.code, tt.message)
		if o != tt.outcome || r != tt.reason {
			t.Errorf("classifyStatus(%d, %q, %q) = %v, %v; want %v, %v", tt.status, tt.code, tt.message, o, r, tt.outcome, tt.reason)
		}
	}
}

// TestDecodeReceiptFastPath checks that the answers Skyfire documents take
// the reflection-free path, and that it gives what encoding/json gives.
func TestDecodeReceiptFastPath(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"amountCharged":"0.01","remainingBalance":"4.99"}`,
		`{"amountCharged":"0.01","remainingBalance":"4.99","transactionId":"tx_0123456789"}`,
		"{\n  \"amountCharged\": \"0.010000\",\n  \"remainingBalance\": \"0\"\n}\n",
		`{"transactionId":null,"amountCharged":"5"}`,
	} {
		fast, ok := decodeReceiptFast([]byte(body))
		if !ok {
			t.Errorf("%s: fast path gave up", body)
			continue
		}
		slow, err := decodeReceiptSlow([]byte(body))
		if err != nil || fast != slow {
			t.Errorf("%s: fast %+v; encoding/json %+v, %v", body, fast, slow, err)
		}
	}
	for _, body := range []string{
		`{"amountCharged":0.01}`,                       // a number: encoding/json decides
		`{"amountCharged":"0.01","AMOUNTCHARGED":"1"}`, // case-folded duplicate
		`{"amountCharged":"0.01","note":"caf\u00e9"}`,  // an escape
		`{"amountCharged":"0.01","n":{"x":1}}`,         // a nested value
		`{"remainingBalance":"1"}`,                     // no amountCharged
	} {
		if _, ok := decodeReceiptFast([]byte(body)); ok {
			t.Errorf("%s: fast path did not give up", body)
		}
	}
}

func TestAppendAmountMatchesString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "0.000001", "0.01", "0.1", "1", "4.999999", "10", "15.5", "123456.000789", "999999999.999999"} {
		a := kyapay.MustParseAmount(s)
		if got := string(appendAmount([]byte("x"), a)); got != "x"+a.String() {
			t.Errorf("appendAmount(%s) = %q; want %q", s, got, "x"+a.String())
		}
	}
}
