package kyapaygin

import (
	"errors"
	"net/http"
	"reflect"

	"github.com/gin-gonic/gin"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Middleware returns a gin handler that enforces req with m, as
// [middleware.Middleware.Require] does for net/http handlers. It reports an
// invalid requirement as an error; m must not be nil.
//
// The handler runs the rest of the gin chain (c.Next) only for accepted
// requests, with c.Request replaced by the request carrying the claims. A
// refused request gets the core middleware's refusal and is aborted
// (c.Abort), so no later handler runs.
func Middleware(m *middleware.Middleware, req middleware.Requirement) (gin.HandlerFunc, error) {
	if m == nil {
		return nil, errors.New("kyapaygin: nil *middleware.Middleware")
	}
	mw, err := m.Require(req)
	if err != nil {
		return nil, err
	}
	return func(c *gin.Context) {
		b := &bridge{c: c}
		mw(b).ServeHTTP(c.Writer, c.Request)
		if !b.called {
			c.Abort()
		}
	}, nil
}

// MustMiddleware is like [Middleware] but panics if req is invalid.
// Requirements are fixed at start-up, so a panic there is a programming
// error, like an invalid route pattern.
func MustMiddleware(m *middleware.Middleware, req middleware.Requirement) gin.HandlerFunc {
	h, err := Middleware(m, req)
	if err != nil {
		panic(err)
	}
	return h
}

// Claims returns the verified claims of the request, and whether there
// were any. They are there in every handler after the one returned by
// [Middleware].
func Claims(c *gin.Context) (*kyapay.Claims, bool) {
	if c == nil || c.Request == nil {
		return nil, false
	}
	return kyapay.FromContext(c.Request.Context())
}

// Receipt returns the charge receipt of a request charged in ChargeBefore
// mode, and whether there was one. In ChargeAfter mode the handlers run
// before the charge, so there is none; see
// [middleware.ReceiptFromContext].
func Receipt(c *gin.Context) (charge.Receipt, bool) {
	if c == nil || c.Request == nil {
		return charge.Receipt{}, false
	}
	return middleware.ReceiptFromContext(c.Request.Context())
}

// bridge is the http.Handler the core middleware calls for an accepted
// request: it runs the rest of the gin chain.
type bridge struct {
	c      *gin.Context
	called bool
}

func (b *bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.called = true
	c := b.c
	c.Request = r
	orig := c.Writer
	if sameWriter(w, orig) {
		// The core passed gin's own writer through (free and ChargeBefore
		// routes): the chain writes to it directly, Hijack included.
		c.Next()
		return
	}
	// ChargeAfter: w is the core's buffer. The chain writes to it through a
	// gin.ResponseWriter, and gin's writer is back in place for the core's
	// verdict and for the handlers before this one, even after a panic.
	rw := newResponseWriter(w, r.Context())
	c.Writer = rw
	defer func() {
		c.Writer = orig
		rw.release()
	}()
	c.Next()
	// gin commits a status set without a body (c.Status) after the chain;
	// do it here so the core sees it.
	rw.WriteHeaderNow()
}

// sameWriter reports whether the core handed the chain gin's own writer.
func sameWriter(w http.ResponseWriter, orig gin.ResponseWriter) bool {
	t := reflect.TypeOf(orig)
	return t != nil && t.Comparable() && w == http.ResponseWriter(orig)
}
