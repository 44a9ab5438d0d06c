package middleware

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// readBody reads r's whole body, at most max bytes, and puts it back.
func readBody(r *http.Request, max int) ([]byte, error) {
	if r.ContentLength > int64(max) {
		return nil, errBodyTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > max {
		return nil, errBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// readIdempotency reads the Idempotency-Key header and fingerprints the
// request into in. The error is an *IdempotencyError.
func (m *Middleware) readIdempotency(r *http.Request, rt *Route, in *Input) error {
	vals := r.Header[IdempotencyKeyHeader]
	if len(vals) != 1 {
		return idemInvalid(rt.format)
	}
	key, err := ParseIdempotencyKey(vals[0])
	if err != nil {
		return idemInvalid(rt.format)
	}
	fp, err := FingerprintRequest(r, m.maxBuffer)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return &IdempotencyError{Code: CodeIdempotencyBodyTooLarge, Status: http.StatusRequestEntityTooLarge, format: rt.format,
				Message: "The request body is too large for a request with an Idempotency-Key."}
		}
		return idemInvalid(rt.format)
	}
	in.IdempotencyKey, in.Fingerprint = key, fp
	return nil
}

// Stored HTTP responses are encoded as
//
//	"KR1" status(uint16) n(uvarint) { len(uvarint) name len(uvarint) value }*n len(uvarint) body
//
// with the response headers that describe the content (hop-by-hop headers,
// Content-Length, Date and Set-Cookie are not kept).
const replayMagic = "KR1"

// notReplayed lists the headers never stored for a replay.
var notReplayed = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Proxy-Authenticate": true,
	"Content-Length": true, "Date": true, "Set-Cookie": true, ReplayedHeader: true,
}

// encodeResponse encodes a response for replay, or returns nil when it
// would exceed max bytes.
func encodeResponse(status int, h http.Header, body []byte, max int) []byte {
	if len(body) > max {
		return nil
	}
	n, size := 0, len(replayMagic)+2+2*binary.MaxVarintLen64+len(body)
	for k, vs := range h {
		if notReplayed[k] {
			continue
		}
		for _, v := range vs {
			size += 2*binary.MaxVarintLen64 + len(k) + len(v)
			n++
		}
	}
	b := make([]byte, 0, size)
	b = append(b, replayMagic...)
	b = binary.BigEndian.AppendUint16(b, uint16(status))
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		if notReplayed[k] {
			continue
		}
		for _, v := range vs {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = append(b, body...)
	if len(b) > max {
		return nil
	}
	return b
}

var errBadReplay = errors.New("kyapay/middleware: stored response is malformed")

// decodeResponse parses a stored response. It checks everything, since
// the bytes come from a shared store.
func decodeResponse(b []byte) (status int, h http.Header, body []byte, err error) {
	if len(b) < len(replayMagic)+2 || string(b[:len(replayMagic)]) != replayMagic {
		return 0, nil, nil, errBadReplay
	}
	b = b[len(replayMagic):]
	status = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if status < 200 || status > 599 {
		return 0, nil, nil, errBadReplay
	}
	next := func() ([]byte, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, false
		}
		v := b[k : k+int(l)]
		b = b[k+int(l):]
		return v, true
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return 0, nil, nil, errBadReplay
	}
	b = b[k:]
	h = make(http.Header, n)
	for range n {
		name, ok := next()
		if !ok || !validHeaderName(name) {
			return 0, nil, nil, errBadReplay
		}
		value, ok := next()
		if !ok || !validHeaderValue(value) {
			return 0, nil, nil, errBadReplay
		}
		key := string(name)
		h[key] = append(h[key], string(value))
	}
	body, ok := next()
	if !ok || len(b) != 0 {
		return 0, nil, nil, errBadReplay
	}
	return status, h, body, nil
}

func validHeaderName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == ',' || c == ';' ||
			c == '<' || c == '>' || c == '@' || c == '[' || c == ']' || c == '\\' || c == '"' ||
			c == '/' || c == '?' || c == '=' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// writeReplay writes a stored response, marked as a replay.
func (m *Middleware) writeReplay(w http.ResponseWriter, r *http.Request, g *Grant, stored []byte) {
	status, h, body, err := decodeResponse(stored)
	if err != nil {
		m.Refuse(w, r, m.refusal(r.Context(), g.rt, r, err, g.price, g.hasPrice, g.claims))
		return
	}
	dst := w.Header()
	for k, vs := range h {
		dst[k] = vs
	}
	dst.Set(ReplayedHeader, "true")
	dst.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// captureWriter passes a ChargeBefore handler's response through and keeps
// a copy of it, up to max encoded bytes, for replay.
type captureWriter struct {
	http.ResponseWriter
	status   int
	header   http.Header // snapshot when the status was written
	body     bytes.Buffer
	max      int
	overflow bool
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
		c.header = c.ResponseWriter.Header().Clone()
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.overflow {
		if c.body.Len()+len(p) > c.max {
			c.overflow = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(p)
		}
	}
	return c.ResponseWriter.Write(p)
}

// Flush flushes the underlying writer, if it can.
func (c *captureWriter) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

// Unwrap returns the underlying writer, for http.ResponseController.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// encode returns the captured response, or nil if it is too large.
func (c *captureWriter) encode() []byte {
	if c.overflow {
		return nil
	}
	status, h := c.status, c.header
	if status == 0 {
		status, h = http.StatusOK, c.ResponseWriter.Header()
	}
	return encodeResponse(status, h, c.body.Bytes(), c.max)
}
