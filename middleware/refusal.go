package middleware

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// Refusal is the error an [ErrorHandler] receives: why the request was
// refused, and what the route would have accepted. Its Err is always a
// *kyapay.Error, so errors.Is(refusal, kyapay.ErrTokenExpired) works.
type Refusal struct {
	// Err is the reason, with a stable code and a caller-safe message.
	Err *kyapay.Error
	// Accepted is the set of token types the route accepts.
	Accepted kyapay.TokenTypes
	// Price is the route's price for this request, when known locally
	// (HasPrice false for free routes, service-price routes, and when a
	// price function failed).
	Price    kyapay.Amount
	HasPrice bool
	// Format is the route's configured refusal format.
	Format Format
	// Header is the request header the token is read from.
	Header string
	// Status is the HTTP status the Middleware's [StatusPolicy] gives the
	// code. Zero means "not set": the default handler then asks the policy.
	Status int
	// SignupURL is where the refusal text tells the buyer to create an
	// account (default DefaultSignupURL).
	SignupURL string
	// RetryAfter is how long the charge API asked to wait (a 429 or 503
	// with Retry-After); zero when it did not say. 503 refusals send it as
	// Retry-After, rounded up to whole seconds (default 5 s).
	RetryAfter time.Duration
}

// Error returns the underlying kyapay error's text.
func (r *Refusal) Error() string { return r.Err.Error() }

// Unwrap returns the underlying *kyapay.Error.
func (r *Refusal) Unwrap() error { return r.Err }

// Code returns the refusal's stable code.
func (r *Refusal) Code() kyapay.Code { return r.Err.Code }

// ErrorHandler writes the response for a refused request. err is always a
// *Refusal; use errors.As to reach it. An ErrorHandler must not run the
// protected handler.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// RefusalDetail is the machine-readable description of a refusal: the
// structuredContent of the MCP-style JSON refusal body, and what
// non-HTTP front ends (MCP tools) put in their error results.
type RefusalDetail struct {
	// Error is the stable refusal code.
	Error kyapay.Code `json:"error"`
	// Message is the caller-facing text ([RefusalMessage]).
	Message string `json:"message"`
	// AcceptedTokenTypes lists the accepted token types: "kya", "pay",
	// "kya-pay".
	AcceptedTokenTypes []string `json:"acceptedTokenTypes"`
	// RequiredAmount and Currency state the price when it is known.
	RequiredAmount string `json:"requiredAmount,omitempty"`
	Currency       string `json:"currency,omitempty"`
	// Header is the HTTP header that carries the token.
	Header string `json:"header"`
	// Argument is the tool argument that carries the token, and MetaKey
	// the request _meta key, for MCP tools ("" outside MCP).
	Argument string `json:"argument,omitempty"`
	MetaKey  string `json:"metaKey,omitempty"`
	// CreateTokenURL documents how to create a token.
	CreateTokenURL string `json:"createTokenUrl"`
}

// Describe returns the refusal in err (a *Refusal from
// [Middleware.Authorize] or [Grant.Commit]; anything else reads as
// internal_error) with its caller-facing text and machine-readable detail
// under the Middleware's policy, for front ends that do not answer with an
// HTTP response.
func (m *Middleware) Describe(err error) (*Refusal, RefusalDetail) {
	var ref *Refusal
	if !errors.As(err, &ref) || ref == nil {
		ref = m.refusal(context.Background(), nil, nil, err, kyapay.Amount{}, false, nil)
	}
	n := normalize(ref)
	return ref, refusalDetail(&n, refusalMessage(&n, m.policy.norm()))
}
