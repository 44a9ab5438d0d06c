package middleware

import (
	"net/http"

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
