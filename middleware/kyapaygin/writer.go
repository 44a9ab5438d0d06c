package kyapaygin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// noWritten is the size of a response whose header is not yet written, as
// in gin.
const noWritten = -1

// responseWriter is the gin.ResponseWriter the chain writes through when
// the core middleware hands it a writer other than gin's (the ChargeAfter
// buffer). It keeps gin's semantics (the status is held until the first
// write or flush, after which it is fixed) and sends everything to w only.
// Hijack and Pusher reach the connection only if w offers them, and
// CloseNotify follows the request's context, so nothing gets past w.
type responseWriter struct {
	w      http.ResponseWriter
	ctx    context.Context
	status int
	size   int

	notify chan bool   // nil until CloseNotify
	stop   func() bool // stops the CloseNotify callback
}

var _ gin.ResponseWriter = (*responseWriter)(nil)

func newResponseWriter(w http.ResponseWriter, ctx context.Context) *responseWriter {
	return &responseWriter{w: w, ctx: ctx, status: http.StatusOK, size: noWritten}
}

// release stops the CloseNotify callback, if any.
func (rw *responseWriter) release() {
	if rw.stop != nil {
		rw.stop()
	}
}

// Header returns w's header map.
func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

// WriteHeader sets the status sent with the first write. Like gin, a
// later status is ignored once the header is written, with one exception:
// a failure status (>= 400) after a success status is passed to the core's
// buffer, which discards what was written and delivers the failure
// uncharged (nothing has reached the client yet).
func (rw *responseWriter) WriteHeader(code int) {
	switch {
	case code <= 0:
	case !rw.Written():
		rw.status = code
	case code >= 400 && rw.status < 400:
		rw.status = code
		rw.size = 0
		rw.w.WriteHeader(code)
	}
}

// WriteHeaderNow writes the header to w unless it is written already.
func (rw *responseWriter) WriteHeaderNow() {
	if !rw.Written() {
		rw.size = 0
		rw.w.WriteHeader(rw.status)
	}
}

// Write writes the header if needed, then p, to w.
func (rw *responseWriter) Write(p []byte) (int, error) {
	rw.WriteHeaderNow()
	n, err := rw.w.Write(p)
	rw.size += n
	return n, err
}

// WriteString is Write for a string.
func (rw *responseWriter) WriteString(s string) (int, error) {
	rw.WriteHeaderNow()
	n, err := io.WriteString(rw.w, s)
	rw.size += n
	return n, err
}

// Status returns the response status: the one written, or the one that
// will be (default 200).
func (rw *responseWriter) Status() int { return rw.status }

// Size returns the number of body bytes written, or -1 before the header
// is written.
func (rw *responseWriter) Size() int { return rw.size }

// Written reports whether the header is written.
func (rw *responseWriter) Written() bool { return rw.size != noWritten }

// Flush writes the header if needed and flushes w if it can. The core's
// ChargeAfter buffer accepts the flush and holds the response.
func (rw *responseWriter) Flush() {
	rw.WriteHeaderNow()
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hijacks w's connection if w supports it; the core's ChargeAfter
// buffer does not, and the error wraps http.ErrNotSupported.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := rw.w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("kyapaygin: hijack: %w", http.ErrNotSupported)
	}
	if rw.size > 0 {
		return nil, nil, fmt.Errorf("kyapaygin: hijack: response body already written")
	}
	if rw.size < 0 {
		rw.size = 0
	}
	return h.Hijack()
}

// CloseNotify returns a channel that receives true once the request's
// context is done (the client left or the server is shutting down).
func (rw *responseWriter) CloseNotify() <-chan bool {
	if rw.notify == nil {
		ch := make(chan bool, 1)
		rw.notify = ch
		rw.stop = context.AfterFunc(rw.ctx, func() { ch <- true })
	}
	return rw.notify
}

// Pusher returns w's http.Pusher, or nil if w has none (the core's
// ChargeAfter buffer has none).
func (rw *responseWriter) Pusher() http.Pusher {
	if p, ok := rw.w.(http.Pusher); ok {
		return p
	}
	return nil
}

// Unwrap returns w, for http.ResponseController.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }
