package charge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
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
}

// call sends one request, retrying only failures that provably happened
// before anything was sent, and reads the answer. tmpl is the request
// template (nil for target). A nil *Error means a response was received
// (of any status); the caller classifies it.
func (c *Client) call(ctx context.Context, op string, tmpl *http.Request, target string, body []byte) (response, *Error) {
	parent := ctx
	// The caller's deadline may already be the shorter one; then a second
	// timer would only cost.
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}

	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return response{}, &Error{Op: op, Outcome: OutcomeNotSent, Reason: ReasonTransport,
				Message: "context done before sending", Err: c.ctxCause(parent, ctx, nil)}
		}
		res, sent, err := c.attempt(ctx, tmpl, target, body)
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
func (c *Client) attempt(ctx context.Context, tmpl *http.Request, target string, body []byte) (res response, sent bool, err error) {
	tctx, a, recycle := traced(ctx)
	if recycle {
		defer attempts.Put(a)
	}
	sec := c.secret()
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
