// Package kyapayecho protects echo (v4) handlers with KYAPay tokens.
//
// It adapts the net/http middleware of
// [github.com/kyapay/kyapay-go/middleware] to echo, so an echo route accepts
// the same [middleware.Requirement] values ([middleware.Identity],
// [middleware.Pay], [middleware.FixedPrice], ChargeAfter, ...) and refuses
// requests with the same responses. It lives in a module of its own so that
// users of the net/http middleware never download echo.
//
// Build one [middleware.Middleware] and install one echo middleware per
// requirement:
//
//	paid := kyapayecho.MustMiddleware(m, middleware.Pay(middleware.FixedPrice("0.01")))
//	e.GET("/report", report, paid)
//
// A refused request is answered by the core middleware's error handler and
// the next handler is not called. An accepted request reaches the next
// handler with c.Request() carrying the verified claims ([Claims]) and, on a
// ChargeBefore route, the charge receipt ([Receipt]).
//
// # ChargeAfter routes
//
// On a ChargeAfter route the next handler writes into the core middleware's
// buffer through an echo.Response that stands in for c.Response() while it
// runs: Write, Flush and c.Stream all go to the buffer, nothing reaches the
// client before the charge is confirmed, and Hijack fails. An error the
// handler returns is rendered by the echo error handler (c.Error) inside the
// buffer, so the core sees its status, delivers it and charges nothing; the
// middleware then returns nil, because the error has been answered.
//
// The status decides the charge, as with net/http handlers: a response
// whose status is 400 or more is delivered and not charged. Because nothing
// has left the buffer, a handler may still fail after it has written: the
// error it returns is rendered on a fresh response, the content written so
// far is discarded, and the request is not charged.
package kyapayecho
