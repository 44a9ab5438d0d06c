package charge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
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
// before anything was sent, and reads the answer. A nil *Error means a
// response was received (of any status); the caller classifies it.
func (c *Client) call(ctx context.Context, op, method, target string, body []byte) (response, *Error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return response{}, &Error{Op: op, Outcome: OutcomeNotSent, Reason: ReasonTransport,
				Message: "context done before sending", Err: c.ctxCause(parent, ctx, nil)}
		}
		res, sent, err := c.attempt(ctx, method, target, body)
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

// attempt performs one HTTP exchange. sent reports whether a failure may
// have happened after the request reached the wire.
func (c *Client) attempt(ctx context.Context, method, target string, body []byte) (res response, sent bool, err error) {
	a := newAttempt()
	tctx := httptrace.WithClientTrace(ctx, &a.trace)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tctx, method, target, rd)
	if err != nil {
		return response{}, false, err // nothing left the process
	}
	h := make(http.Header, 5)
	h["Skyfire-Api-Key"] = c.secret().keyHeader
	h["User-Agent"] = c.secret().userAgent
	h["Accept"] = jsonAccept
	if body != nil {
		h["Content-Type"] = jsonContentType
	}
	req.Header = h

	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, a.mayHaveSent(), err
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	res.body, res.tooLarge, res.readErr = readBody(resp, c.maxBody)
	return res, true, nil
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
