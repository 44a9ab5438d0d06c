// Package kyapaygin protects gin handlers with KYAPay tokens.
//
// It adapts the net/http middleware of
// [github.com/kyapay/kyapay-go/middleware] to gin, so a gin route accepts the
// same [middleware.Requirement] values ([middleware.Identity],
// [middleware.Pay], [middleware.FixedPrice], ChargeAfter, ...) and refuses
// requests with the same responses. It lives in a module of its own so that
// users of the net/http middleware never download gin.
//
// Build one [middleware.Middleware] and install one handler per requirement:
//
//	paid := kyapaygin.MustMiddleware(m, middleware.Pay(middleware.FixedPrice("0.01")))
//	r.GET("/report", paid, report)
//
// A refused request is answered by the core middleware's error handler and
// aborted: no later handler runs. An accepted request continues down the gin
// chain with c.Request carrying the verified claims ([Claims]) and, on a
// ChargeBefore route, the charge receipt ([Receipt]).
//
// # ChargeAfter routes
//
// On a ChargeAfter route the later handlers write into the core
// middleware's buffer through a gin.ResponseWriter that stands in for
// c.Writer while they run: Write, WriteString, c.Stream and Flush all go to
// the buffer, and nothing reaches the client before the charge is confirmed.
// Hijack fails with an error wrapping [net/http.ErrNotSupported], Pusher
// returns nil, and CloseNotify fires when the request's context is done.
//
// The status decides the charge, as with net/http handlers: a response
// whose status is 400 or more is delivered and not charged. Because nothing
// has left the buffer, a handler may still fail after it has written or
// flushed: a later c.AbortWithStatus(500) (or any status of 400 or more)
// replaces the success, the content written so far is discarded, and the
// request is not charged. A later success status is ignored, as in gin.
package kyapaygin
