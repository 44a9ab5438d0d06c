package charge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Progress bits recorded by the trace hooks of one attempt.
const (
	traceGetConn uint32 = 1 << iota // the Transport asked for a connection
	traceGotConn                    // it got one: the request may now be written
	traceWrote                      // it wrote (part of) the request
)

// attempt records, through net/http/httptrace, how far one HTTP attempt
// got. The hooks run on Transport goroutines, hence the atomic.
type attempt struct {
	progress atomic.Uint32
	trace    httptrace.ClientTrace
}

func newAttempt() *attempt {
	a := new(attempt)
	a.trace = httptrace.ClientTrace{
		GetConn:      func(string) { a.progress.Or(traceGetConn) },
		GotConn:      func(httptrace.GotConnInfo) { a.progress.Or(traceGotConn) },
		WroteHeaders: func() { a.progress.Or(traceWrote) },
		WroteRequest: func(httptrace.WroteRequestInfo) { a.progress.Or(traceWrote) },
	}
	return a
}

// attempts recycles attempt records and their hooks. A Transport may
// still call a write hook of a recycled record after the response it
// belonged to was read (the request's writer runs on its own goroutine);
// such a late call can only mark the next attempt as "may have sent",
// which makes its failure OutcomeUnknown instead of OutcomeNotSent: never
// the unsafe way round.
var attempts = sync.Pool{New: func() any { return newAttempt() }}

// traced returns ctx with an attempt record's hooks, and the record;
// recycle reports whether the record goes back to attempts when the
// attempt is over. If ctx already carries a client trace, httptrace
// composes it into the record's hooks, so that record is fresh and not
// recycled.
func traced(ctx context.Context) (tctx context.Context, a *attempt, recycle bool) {
	if httptrace.ContextClientTrace(ctx) != nil {
		a = newAttempt()
		return httptrace.WithClientTrace(ctx, &a.trace), a, false
	}
	a = attempts.Get().(*attempt)
	a.progress.Store(0)
	return httptrace.WithClientTrace(ctx, &a.trace), a, true
}

// mayHaveSent reports whether the request may have reached the server.
//
// It is false only when the Transport reported asking for a connection
// (GetConn) and never reported getting one (GotConn) or writing anything.
// *http.Transport calls GotConn on the calling goroutine, for HTTP/1 and
// HTTP/2 alike, before it hands the request to the connection's writer, so
// an error returned without GotConn provably left no byte of this request
// on the wire (DNS, dial, proxy CONNECT or TLS handshake failure, context
// done while waiting for a connection). Once GotConn has fired, every
// failure counts as sent, even if no header was written yet: the writer
// runs on another goroutine, and "not written yet" cannot be observed
// without a race. A Transport that reports no events at all gives no
// proof either, so its failures count as sent.
func (a *attempt) mayHaveSent() bool {
	p := a.progress.Load()
	return p&traceGetConn == 0 || p&(traceGotConn|traceWrote) != 0
}

// response is a fully read HTTP answer.
type response struct {
	status   int
	body     []byte
	tooLarge bool  // the body exceeded MaxResponseBytes (body is empty)
	readErr  error // the body could not be read to the end
	keyErr   error // a 401 made the client re-read its key, which failed
	// retryAfter is the Retry-After header of a 429 or 503 answer.
	retryAfter string
}

// Bounds of the waits for a rate-limited (429) answer.
const (
	maxRateLimitWaits = 3         // waits per call
	maxRetryAfter     = time.Hour // a longer Retry-After is taken as this
)

// exchange performs one operation: the HTTP call (with its not-sent
// retries), then, on a 401, at most one more call with a key re-read from
// the KeySource, and, on a 429 with a Retry-After that fits in the time
// left, the wait and another call (at most maxRateLimitWaits times).
// Both are safe: a 401 or 429 answer means nothing was charged. The
// whole exchange is bounded by the per-call timeout. It returns the final
// response and the scrubber for the secrets it used.
func (c *Client) exchange(ctx context.Context, op string, tmpl *http.Request, target string, body []byte, token string) (response, scrubber, *Error) {
	parent := ctx
	// The caller's deadline may already be the shorter one; then a second
	// timer would only cost.
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	sec := c.secret()
	sc := scrubber{token: token, key: sec.key}
	rekeyed := false
	for waits := 0; ; {
		res, cerr := c.call(ctx, parent, op, tmpl, target, body, sec)
		if cerr != nil {
			return response{}, sc, cerr
		}
		switch {
		case res.status == http.StatusUnauthorized && !rekeyed && c.source != nil:
			rekeyed = true
			next, err := c.rekey(ctx, sec)
			if err != nil {
				res.keyErr = err
				return res, sc, nil
			}
			if next == sec {
				return res, sc, nil // the source has no other key
			}
			sec, sc.prevKey, sc.key = next, sec.key, next.key
			continue
		case res.status == http.StatusTooManyRequests && waits < maxRateLimitWaits:
			d, ok := parseRetryAfter(res.retryAfter, c.now())
			if !ok {
				return res, sc, nil
			}
			if dl, _ := ctx.Deadline(); c.now().Add(d).After(dl) {
				return res, sc, nil // cannot wait that long: the caller decides
			}
			waits++
			if c.sleep(ctx, d) != nil {
				return res, sc, nil // the caller gave up: the 429 stands
			}
			continue
		}
		return res, sc, nil
	}
}

// rekey asks the KeySource for the key again after the API refused the
// key of used, and returns the secret to use now: the new one, used itself
// if the source gives the same key, or an error (the source failed or
// gave a malformed key; the current key stays). Concurrent 401s read the
// source once: whoever comes second finds the key already replaced.
func (c *Client) rekey(ctx context.Context, used *clientSecret) (*clientSecret, error) {
	c.keys.mu.Lock()
	defer c.keys.mu.Unlock()
	cur := c.secret()
	if cur != used {
		return cur, nil
	}
	k, err := c.source(ctx)
	if err != nil {
		return nil, fmt.Errorf("re-reading the API key: %w", err)
	}
	if err := k.Check(); err != nil {
		return nil, fmt.Errorf("re-reading the API key: %w", err)
	}
	if k.Reveal() == cur.key {
		return cur, nil
	}
	next := newClientSecret(k.Reveal(), cur.userAgent)
	c.keys.cur.Store(next)
	return next, nil
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP
// date, as a wait from now. Waits are clamped to [0, maxRetryAfter].
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true // only overflow fails on digits
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call sends one request with the key of sec, retrying only failures that
// provably happened before anything was sent, and reads the answer. ctx
// carries the per-call timeout, parent is the caller's context. tmpl is
// the request template (nil for a GET of target). A nil *Error means a
// response was received (of any status); the caller classifies it.
func (c *Client) call(ctx, parent context.Context, op string, tmpl *http.Request, target string, body []byte, sec *clientSecret) (response, *Error) {
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return response{}, &Error{Op: op, Outcome: OutcomeNotSent, Reason: ReasonTransport,
				Message: "context done before sending", Err: c.ctxCause(parent, ctx, nil)}
		}
		res, sent, err := c.attempt(ctx, tmpl, target, body, sec)
		if err == nil {
			if res.readErr != nil {
				res.readErr = c.ctxCause(parent, ctx, res.readErr)
			}
			return res, nil
		}
		if sent {
			return response{}, &Error{Op: op, Outcome: OutcomeUnknown, Reason: ReasonTransport,
				Message: "request may have been sent", Err: c.ctxCause(parent, ctx, err)}
		}
		if n >= c.maxRetries || ctx.Err() != nil {
			return response{}, &Error{Op: op, Outcome: OutcomeNotSent, Reason: ReasonTransport,
				Message: notSentMessage(n), Err: c.ctxCause(parent, ctx, err)}
		}
		if d := c.backoff(n + 1); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return response{}, &Error{Op: op, Outcome: OutcomeNotSent, Reason: ReasonTransport,
					Message: notSentMessage(n), Err: c.ctxCause(parent, ctx, err)}
			}
		}
	}
}

func notSentMessage(retries int) string {
	switch retries {
	case 0:
		return "request not sent"
	case 1:
		return "request not sent after 1 retry"
	}
	return fmt.Sprintf("request not sent after %d retries", retries)
}

// attempt performs one HTTP exchange, from the template tmpl or, when it
// is nil, a GET of target. sent reports whether a failure may have
// happened after the request reached the wire.
func (c *Client) attempt(ctx context.Context, tmpl *http.Request, target string, body []byte, sec *clientSecret) (res response, sent bool, err error) {
	tctx, a, recycle := traced(ctx)
	if recycle {
		defer attempts.Put(a)
	}
	var req *http.Request
	if tmpl != nil {
		req = tmpl.WithContext(tctx)
	} else if req, err = http.NewRequestWithContext(tctx, http.MethodGet, target, nil); err != nil {
		return response{}, false, err // nothing left the process
	}
	if body != nil {
		// An io.NopCloser over a *bytes.Reader is a body the Transport
		// knows to be in memory: it writes the headers and the body in one
		// go instead of flushing the headers first (one segment, not two).
		req.Body, req.GetBody, req.ContentLength = io.NopCloser(bytes.NewReader(body)), replay(body), int64(len(body))
		req.Header = sec.postHeader
	} else {
		req.Header = sec.getHeader
	}
	if !c.sharedHeaders {
		req.Header = req.Header.Clone()
	}

	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return response{}, a.mayHaveSent(), err
	}
	if resp == nil {
		return response{}, true, errors.New("RoundTripper returned no response and no error")
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	if res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable {
		res.retryAfter = resp.Header.Get("Retry-After")
	}
	res.body, res.tooLarge, res.readErr = readBody(resp, c.maxBody)
	return res, true, nil
}

// replay returns a GetBody for body: the Transport asks for the body
// again when it retries a request it provably never wrote, on a
// kept-alive connection the server had closed.
func replay(body []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// readBody reads at most max bytes of the body. A body longer than that is
// reported as tooLarge, not truncated.
func readBody(resp *http.Response, max int64) (body []byte, tooLarge bool, err error) {
	if resp.ContentLength > max {
		return nil, true, nil
	}
	if resp.ContentLength >= 0 {
		buf := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, false, err
		}
		// Let the Transport see EOF so the connection can be reused.
		var one [1]byte
		if n, _ := resp.Body.Read(one[:]); n > 0 {
			return nil, true, nil
		}
		return buf, false, nil
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(buf)) > max {
		return nil, true, nil
	}
	return buf, false, nil
}

// ctxCause returns the cause to put in an Error. When the context is done
// it makes sure errors.Is(cause, ctx.Err()) holds, and names this Client's
// own per-call timeout when that is what fired.
func (c *Client) ctxCause(parent, ctx context.Context, err error) error {
	ctxErr := ctx.Err()
	if ctxErr == nil {
		return err
	}
	if err == nil {
		err = ctxErr
	} else if !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	if parent.Err() == nil && errors.Is(ctxErr, context.DeadlineExceeded) {
		return fmt.Errorf("per-call timeout %v: %w", c.timeout, err)
	}
	return err
}
