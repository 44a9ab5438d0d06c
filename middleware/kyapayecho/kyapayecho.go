package kyapayecho

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Middleware returns an echo middleware that enforces req with m, as
// [middleware.Middleware.Require] does for net/http handlers. It reports an
// invalid requirement as an error; m must not be nil.
//
// The next handler runs only for accepted requests, with c.Request()
// replaced by the request carrying the claims. A refused request gets the
// core middleware's refusal, and the middleware returns nil without calling
// next.
//
// On free and ChargeBefore routes the next handler's error is returned to
// echo as usual. On ChargeAfter routes it is rendered with c.Error into the
// buffered response, and the middleware returns nil.
func Middleware(m *middleware.Middleware, req middleware.Requirement) (echo.MiddlewareFunc, error) {
	if m == nil {
		return nil, errors.New("kyapayecho: nil *middleware.Middleware")
	}
	mw, err := m.Require(req)
	if err != nil {
		return nil, err
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			b := &bridge{c: c, next: next}
			mw(b).ServeHTTP(c.Response(), c.Request())
			return b.err
		}
	}, nil
}

// MustMiddleware is like [Middleware] but panics if req is invalid.
// Requirements are fixed at start-up, so a panic there is a programming
// error, like an invalid route.
func MustMiddleware(m *middleware.Middleware, req middleware.Requirement) echo.MiddlewareFunc {
	mw, err := Middleware(m, req)
	if err != nil {
		panic(err)
	}
	return mw
}

// Claims returns the verified claims of the request, and whether there
// were any. They are there in every handler after the middleware returned
// by [Middleware].
func Claims(c echo.Context) (*kyapay.Claims, bool) {
	if c == nil || c.Request() == nil {
		return nil, false
	}
	return kyapay.FromContext(c.Request().Context())
}

// Receipt returns the charge receipt of a request charged in ChargeBefore
// mode, and whether there was one. In ChargeAfter mode the handler runs
// before the charge, so there is none; see [middleware.ReceiptFromContext].
func Receipt(c echo.Context) (charge.Receipt, bool) {
	if c == nil || c.Request() == nil {
		return charge.Receipt{}, false
	}
	return middleware.ReceiptFromContext(c.Request().Context())
}

// bridge is the http.Handler the core middleware calls for an accepted
// request: it runs the next echo handler.
type bridge struct {
	c    echo.Context
	next echo.HandlerFunc
	err  error // next's error, for echo to handle
}

func (b *bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := b.c
	c.SetRequest(r)
	orig := c.Response()
	if w == http.ResponseWriter(orig) {
		// The core passed echo's own response through (free and
		// ChargeBefore routes): nothing to swap, and echo handles the error
		// as it would without this middleware.
		b.err = b.next(c)
		return
	}
	// ChargeAfter: w is the core's buffer. The handler, and the error
	// handler for its error, write to it through a new echo.Response; the
	// original is back in place for the core's verdict and for the
	// middleware before this one, even after a panic.
	c.SetResponse(echo.NewResponse(w, c.Echo()))
	defer c.SetResponse(orig)
	if err := b.next(c); err != nil {
		if res := c.Response(); res.Committed && res.Status < 400 {
			// The handler failed after it started a success response. Echo's
			// error handler skips committed responses, but nothing has left
			// the core's buffer: render the error on a fresh response, whose
			// failure status makes the buffer drop the partial content.
			c.SetResponse(echo.NewResponse(w, c.Echo()))
		}
		c.Error(err)
	}
}
