package middleware

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// errBufferFull is returned by bufferedWriter.Write past MaxBufferBytes.
var errBufferFull = errors.New("kyapay/middleware: charge-after response exceeds MaxBufferBytes")

// bufferedWriter holds a ChargeAfter handler's whole response (header,
// status, body) until the charge is confirmed. Flush is accepted and does
// nothing. It deliberately implements neither Hijack nor Unwrap, so
// http.ResponseController cannot reach the real connection through it and
// nothing can leave before copyTo.
type bufferedWriter struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int
	overflow bool
}

func newBufferedWriter(max int) *bufferedWriter {
	return &bufferedWriter{header: make(http.Header), max: max}
}

// Header returns the buffered header map.
func (b *bufferedWriter) Header() http.Header { return b.header }

// WriteHeader records the status. Informational (1xx) statuses are
// dropped: they would reach the client before the charge.
//
// Unlike a live connection, a failure status (>= 400) set after a success
// status or after body bytes still takes effect: nothing has left yet, so
// the handler's failure wins, the bytes written so far (paid content) are
// discarded, and the request is not charged. Frameworks rely on this when a
// handler fails after it started writing (gin's AbortWithStatus, an echo
// handler returning an error).
func (b *bufferedWriter) WriteHeader(code int) {
	switch {
	case code < 200:
	case b.status == 0:
		b.status = code
	case code >= 400 && b.status < 400:
		b.status = code
		b.body.Reset()
		b.overflow = false
	}
}

// Write appends to the buffer, up to the limit.
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.overflow || b.body.Len()+len(p) > b.max {
		b.overflow = true
		return 0, errBufferFull
	}
	return b.body.Write(p)
}

// Flush implements http.Flusher without flushing: the response is held
// until the charge is confirmed.
func (b *bufferedWriter) Flush() {}

// FlushError implements the interface http.ResponseController uses, with
// the same no-op meaning.
func (b *bufferedWriter) FlushError() error { return nil }

func (b *bufferedWriter) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// copyTo releases the buffered response to w.
func (b *bufferedWriter) copyTo(w http.ResponseWriter) {
	dst := w.Header()
	for k, v := range b.header {
		dst[k] = v
	}
	w.WriteHeader(b.statusCode())
	_, _ = w.Write(b.body.Bytes())
}

// lengthMismatch reports a Content-Length header that the buffered body
// does not match (or that is not a valid length), which on a live
// connection would truncate or break the response.
func (b *bufferedWriter) lengthMismatch() error {
	vals := b.header["Content-Length"]
	if len(vals) == 0 {
		return nil
	}
	if len(vals) > 1 {
		return errors.New("charge-after handler set Content-Length more than once; not charged")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(vals[0]), 10, 64)
	if err != nil || n < 0 {
		return errors.New("charge-after handler set an invalid Content-Length; not charged")
	}
	if n != int64(b.body.Len()) {
		return fmt.Errorf("charge-after handler declared Content-Length %d but wrote %d bytes; not charged", n, b.body.Len())
	}
	return nil
}
