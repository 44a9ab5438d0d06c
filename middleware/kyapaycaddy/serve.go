package kyapaycaddy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// pass is one accepted request on its way to the next handler.
type pass struct {
	h    *Handler
	rt   *middleware.Route
	next caddyhttp.Handler
}

// Errors returned (as caddyhttp.HandlerError) for a response that a route
// charging after the upstream cannot hold; none is charged or delivered.
var (
	errStream = errors.New("kyapay: the upstream answered with an event stream (or a protocol upgrade) on a route that charges after the upstream; " +
		"a stream cannot be held until the charge is confirmed, so it was not delivered and not charged: use timing before on this route")
	errIncomplete = errors.New("kyapay: the upstream response was cut short on a route that charges after the upstream; not delivered, not charged")
	errTooLarge   = errors.New("kyapay: the upstream response is larger than max_buffer on a route that charges after the upstream; not delivered, not charged")
)

// serve is the gate's next: it runs once the gate accepted the request
// (and, charging before, charged it).
func (p *pass) serve(w http.ResponseWriter, req *http.Request) (err error) {
	st, r := p.h.takeToken(req)
	c, _ := kyapay.FromContext(r.Context())
	receipt, charged := middleware.ReceiptFromContext(r.Context())
	// The gate holds the response in a buffer until it charges when the
	// route is priced, the request is not HEAD, and it did not charge yet.
	pending := !charged && p.rt.Paid() && r.Method != http.MethodHead
	var chargedText, priceText string
	if charged {
		chargedText = receipt.AmountCharged.String()
	} else if pending {
		if price, ok := p.rt.FixedPrice(); ok {
			priceText = price.String()
		}
	}
	if c != nil {
		st.id.set(r.Header, c, chargedText, priceText)
	}
	if !pending {
		return p.next.ServeHTTP(w, r)
	}

	// w is the gate's buffer: nothing reaches the client before the
	// charge. reverse_proxy aborts with http.ErrAbortHandler when it cannot
	// finish copying a response (here: the guard refused it, the buffer
	// is full, or the upstream broke off); since nothing was sent, turn
	// that into an error, which the gate answers without charging.
	if isUpgrade(r) {
		return caddyhttp.Error(http.StatusBadGateway, errStream)
	}
	g := &guard{ResponseWriter: w}
	defer func() {
		if rec := recover(); rec != nil {
			if rec != http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, compared as net/http does
				panic(rec)
			}
			err = g.failure()
		}
	}()
	err = p.next.ServeHTTP(g, r)
	if err == nil && g.refused {
		err = g.failure()
	}
	return err
}

// guard stands between the next handler and the gate's buffer on a route
// that charges after the upstream. It refuses what cannot be held: an
// event stream (text/event-stream) and a protocol upgrade (1xx, such as
// 101 Switching Protocols, which the buffer cannot pass on) are replaced
// by a 502 in the buffer, and every later write fails, so nothing is
// delivered and the gate charges nothing.
type guard struct {
	http.ResponseWriter
	wrote    bool
	refused  bool
	overflow bool
}

func (g *guard) WriteHeader(code int) {
	switch {
	case g.refused:
	case code == http.StatusSwitchingProtocols || (!g.wrote && code >= 200 && isStream(g.Header())):
		g.refused = true
		g.ResponseWriter.WriteHeader(http.StatusBadGateway)
	default:
		// Other 1xx (103 Early Hints) reach the buffer, which drops them;
		// a later failure status reaches it too, and wins there.
		if code >= 200 {
			g.wrote = true
		}
		g.ResponseWriter.WriteHeader(code)
	}
}

func (g *guard) Write(p []byte) (int, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	if g.refused {
		return 0, errStream
	}
	n, err := g.ResponseWriter.Write(p)
	if err != nil {
		g.overflow = true
	}
	return n, err
}

// Flush and FlushError reach the buffer's (which holds everything).
func (g *guard) Flush() { _ = g.FlushError() }

// FlushError flushes the buffer, which keeps the response until the charge.
func (g *guard) FlushError() error {
	return http.NewResponseController(g.ResponseWriter).Flush()
}

// failure is the error for a response the guard could not let through.
func (g *guard) failure() error {
	switch {
	case g.refused:
		return caddyhttp.Error(http.StatusBadGateway, errStream)
	case g.overflow:
		return caddyhttp.Error(http.StatusInternalServerError, errTooLarge)
	}
	return caddyhttp.Error(http.StatusBadGateway, errIncomplete)
}

// isStream reports whether the response header announces an event
// stream. It reads the media type leniently (any case, any parameters,
// even malformed ones), so that no spelling a client would take for a
// stream gets through.
func isStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// isUpgrade reports whether the request asks to switch protocols (a
// WebSocket upgrade, or an HTTP/2 extended CONNECT).
func isUpgrade(r *http.Request) bool {
	return r.Method == http.MethodConnect || len(r.Header["Upgrade"]) > 0
}
