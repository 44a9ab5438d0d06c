package kyapay

import (
	"errors"
)

// Code is a stable, machine-readable reason for refusing a request. Codes are
// snake_case strings; they appear in logs, in MCP-style JSON bodies and in
// [Error]. New codes may be added; existing ones keep their meaning.
type Code string

// Verification codes: the token itself is missing or unacceptable.
const (
	CodeTokenMissing             Code = "token_missing"
	CodeTokenTooLarge            Code = "token_too_large"
	CodeTokenMalformed           Code = "token_malformed"
	CodeAlgorithmNotAllowed      Code = "algorithm_not_allowed"
	CodeHeaderNotAllowed         Code = "header_not_allowed"
	CodeConfirmationNotSupported Code = "confirmation_not_supported"
	CodeSignatureInvalid         Code = "signature_invalid"
	CodeTokenExpired             Code = "token_expired"
	CodeTokenNotYetValid         Code = "token_not_yet_valid"
	CodeClaimMissing             Code = "claim_missing"
	CodeClaimInvalid             Code = "claim_invalid"
	CodeIssuerUntrusted          Code = "issuer_untrusted"
	CodeAudienceMismatch         Code = "audience_mismatch"
	CodeServiceMismatch          Code = "service_mismatch"
	CodeEnvMismatch              Code = "env_mismatch"
	CodeTypeNotAccepted          Code = "type_not_accepted"
	CodeKeyUnknown               Code = "key_unknown"
)

// CodeConfirmationRequired is the former name of
// [CodeConfirmationNotSupported]; its value was always
// "confirmation_not_supported".
//
// Deprecated: use CodeConfirmationNotSupported.
const CodeConfirmationRequired = CodeConfirmationNotSupported

// CodeTokenAmbiguous: the request carried two different tokens (for
// example one in the header and another as an MCP tool argument).
const CodeTokenAmbiguous Code = "token_ambiguous"

// Server-side verification failure: the issuer's keys could not be loaded.
// This is not the buyer's fault and is never answered with 402.
const CodeKeysUnavailable Code = "keys_unavailable"

// Requirement and payment codes, produced by the middleware and charge
// client.
const (
	// CodeIdentityRequired: the route needs a kya or kya-pay token.
	CodeIdentityRequired Code = "identity_required"
	// CodeIdentityFieldsMissing: the token lacks identity fields the route needs.
	CodeIdentityFieldsMissing Code = "identity_fields_missing"
	// CodePayRequired: the route needs a pay or kya-pay token.
	CodePayRequired Code = "pay_required"
	// CodeAmountInsufficient: the token's amount is below the route's price.
	CodeAmountInsufficient Code = "amount_insufficient"
	// CodeTokenDepleted: the token's remaining balance does not cover the price.
	CodeTokenDepleted Code = "token_depleted"
	// CodeChargeDeclined: Skyfire refused the charge for a reason other than balance.
	CodeChargeDeclined Code = "charge_declined"
	// CodeChargeUnknown: the charge may or may not have happened (timeout,
	// connection lost after sending, 5xx). The agent must not pay again.
	CodeChargeUnknown Code = "charge_unknown"
	// CodeChargeUnavailable: the charge API could not be reached and nothing
	// was sent; nothing was charged and the agent may retry later.
	CodeChargeUnavailable Code = "charge_unavailable"
	// CodeChargeMismatch: Skyfire confirmed a charge of less than the price
	// asked for. Money has moved, so the agent must not pay again, but the
	// content is not delivered as paid; the seller reconciles.
	CodeChargeMismatch Code = "charge_mismatch"
	// CodeInternal: a server-side failure unrelated to the token.
	CodeInternal Code = "internal_error"
)

// Error is a refusal with a stable [Code], a message that is safe to show to
// the caller, and an optional internal cause that is not (it may name key
// IDs, upstream bodies or configuration). Log Err; show Message.
//
// Use [errors.Is] with the sentinels (ErrTokenExpired, ...) to test the code,
// and [errors.As] to reach the Error itself.
type Error struct {
	// Code is the stable reason.
	Code Code
	// Message is safe to show the caller: it never quotes the token,
	// keys, configuration or upstream responses.
	Message string
	// Err is the internal cause, for logs only; nil if there is none.
	Err error
}

// Error returns "kyapay: CODE: MESSAGE", followed by the cause if there is one.
func (e *Error) Error() string {
	s := "kyapay: " + string(e.Code) + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, kyapay.ErrTokenExpired) matches every expiry refusal
// whatever its message or cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// NewError returns an *Error with the given code, safe message and cause.
// If message is empty the code's default message is used.
func NewError(code Code, message string, cause error) *Error {
	if message == "" {
		message = DefaultMessage(code)
	}
	return &Error{Code: code, Message: message, Err: cause}
}

// CodeOf returns the code of the first *Error in err's chain, or
// [CodeInternal] if there is none, or "" if err is nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// DefaultMessage returns a short, caller-safe description of a code.
func DefaultMessage(code Code) string {
	if m, ok := defaultMessages[code]; ok {
		return m
	}
	return "request refused"
}

var defaultMessages = map[Code]string{
	CodeTokenMissing:             "no KYAPay token in the request",
	CodeTokenTooLarge:            "token is too large",
	CodeTokenMalformed:           "token is not a well-formed compact JWS",
	CodeAlgorithmNotAllowed:      "token algorithm is not allowed",
	CodeHeaderNotAllowed:         "token header carries a parameter that is not allowed",
	CodeConfirmationNotSupported: "sender-constrained tokens (cnf) are not supported",
	CodeTokenAmbiguous:           "the request carries two different tokens",
	CodeChargeMismatch:           "the payment service charged less than the price; do not pay again, the seller will reconcile",
	CodeSignatureInvalid:         "token signature is invalid",
	CodeTokenExpired:             "token has expired",
	CodeTokenNotYetValid:         "token is not valid yet",
	CodeClaimMissing:             "token lacks a required claim",
	CodeClaimInvalid:             "token has an invalid claim",
	CodeIssuerUntrusted:          "token issuer is not trusted",
	CodeAudienceMismatch:         "token is meant for another seller",
	CodeServiceMismatch:          "token is meant for another service",
	CodeEnvMismatch:              "token is for another environment",
	CodeTypeNotAccepted:          "token type is not accepted here",
	CodeKeyUnknown:               "token signing key is unknown",
	CodeKeysUnavailable:          "issuer keys are unavailable; try again later",
	CodeIdentityRequired:         "a kya or kya-pay token is required",
	CodeIdentityFieldsMissing:    "token lacks required identity fields",
	CodePayRequired:              "a pay or kya-pay token is required",
	CodeAmountInsufficient:       "token amount is below the price",
	CodeTokenDepleted:            "token balance is depleted",
	CodeChargeDeclined:           "charge was declined",
	CodeChargeUnknown:            "charge outcome is unknown; do not pay again, retry with the same token later",
	CodeChargeUnavailable:        "payment service unavailable; nothing was charged, retry later",
	CodeInternal:                 "internal error",
}

// Sentinels for [errors.Is]. Each matches any *Error with the same code.
var (
	ErrTokenMissing             = &Error{Code: CodeTokenMissing, Message: defaultMessages[CodeTokenMissing]}
	ErrTokenTooLarge            = &Error{Code: CodeTokenTooLarge, Message: defaultMessages[CodeTokenTooLarge]}
	ErrTokenMalformed           = &Error{Code: CodeTokenMalformed, Message: defaultMessages[CodeTokenMalformed]}
	ErrAlgorithmNotAllowed      = &Error{Code: CodeAlgorithmNotAllowed, Message: defaultMessages[CodeAlgorithmNotAllowed]}
	ErrHeaderNotAllowed         = &Error{Code: CodeHeaderNotAllowed, Message: defaultMessages[CodeHeaderNotAllowed]}
	ErrConfirmationNotSupported = &Error{Code: CodeConfirmationNotSupported, Message: defaultMessages[CodeConfirmationNotSupported]}
	ErrTokenAmbiguous           = &Error{Code: CodeTokenAmbiguous, Message: defaultMessages[CodeTokenAmbiguous]}
	ErrChargeMismatch           = &Error{Code: CodeChargeMismatch, Message: defaultMessages[CodeChargeMismatch]}
	ErrSignatureInvalid         = &Error{Code: CodeSignatureInvalid, Message: defaultMessages[CodeSignatureInvalid]}
	ErrTokenExpired             = &Error{Code: CodeTokenExpired, Message: defaultMessages[CodeTokenExpired]}
	ErrTokenNotYetValid         = &Error{Code: CodeTokenNotYetValid, Message: defaultMessages[CodeTokenNotYetValid]}
	ErrClaimMissing             = &Error{Code: CodeClaimMissing, Message: defaultMessages[CodeClaimMissing]}
	ErrClaimInvalid             = &Error{Code: CodeClaimInvalid, Message: defaultMessages[CodeClaimInvalid]}
	ErrIssuerUntrusted          = &Error{Code: CodeIssuerUntrusted, Message: defaultMessages[CodeIssuerUntrusted]}
	ErrAudienceMismatch         = &Error{Code: CodeAudienceMismatch, Message: defaultMessages[CodeAudienceMismatch]}
	ErrServiceMismatch          = &Error{Code: CodeServiceMismatch, Message: defaultMessages[CodeServiceMismatch]}
	ErrEnvMismatch              = &Error{Code: CodeEnvMismatch, Message: defaultMessages[CodeEnvMismatch]}
	ErrTypeNotAccepted          = &Error{Code: CodeTypeNotAccepted, Message: defaultMessages[CodeTypeNotAccepted]}
	ErrKeyUnknown               = &Error{Code: CodeKeyUnknown, Message: defaultMessages[CodeKeyUnknown]}
	ErrKeysUnavailable          = &Error{Code: CodeKeysUnavailable, Message: defaultMessages[CodeKeysUnavailable]}
	ErrIdentityRequired         = &Error{Code: CodeIdentityRequired, Message: defaultMessages[CodeIdentityRequired]}
	ErrIdentityFieldsMissing    = &Error{Code: CodeIdentityFieldsMissing, Message: defaultMessages[CodeIdentityFieldsMissing]}
	ErrPayRequired              = &Error{Code: CodePayRequired, Message: defaultMessages[CodePayRequired]}
	ErrAmountInsufficient       = &Error{Code: CodeAmountInsufficient, Message: defaultMessages[CodeAmountInsufficient]}
	ErrTokenDepleted            = &Error{Code: CodeTokenDepleted, Message: defaultMessages[CodeTokenDepleted]}
	ErrChargeDeclined           = &Error{Code: CodeChargeDeclined, Message: defaultMessages[CodeChargeDeclined]}
	ErrChargeUnknown            = &Error{Code: CodeChargeUnknown, Message: defaultMessages[CodeChargeUnknown]}
	ErrChargeUnavailable        = &Error{Code: CodeChargeUnavailable, Message: defaultMessages[CodeChargeUnavailable]}
)

// ErrConfirmationRequired is the former name of [ErrConfirmationNotSupported].
//
// Deprecated: use ErrConfirmationNotSupported.
var ErrConfirmationRequired = ErrConfirmationNotSupported
