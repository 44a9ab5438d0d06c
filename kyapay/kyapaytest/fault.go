package kyapaytest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// Fault makes an endpoint misbehave. Inject it with [Issuer.InjectFault].
//
// Effects combine in this order: Latency first; then, if ChargeFirst or
// TimeoutAfterCharge is set, the request is processed normally and its
// response discarded; then Hang or TimeoutAfterCharge blocks,
// CloseConnection or ResetConnection drops the connection, or Status/Body
// answers. A fault with only Latency or AmountCharged lets the request
// proceed normally (after the wait).
//
// A charge made by a faulted request (ChargeFirst, TimeoutAfterCharge) is
// in the ledger like any other: GET /api/v1/tokens/{jti}/charges lists it,
// so a seller can resolve the unknown outcome the way it would with
// Skyfire.
type Fault struct {
	// Endpoint is the endpoint to disturb: "charge", "introspect",
	// "charges" or "jwks" (the Endpoint* constants). Required.
	Endpoint string
	// Status answers with this HTTP status (200 to 599). With no Body, a
	// status of 400 or more gets a Skyfire error envelope
	// {"code":...,"message":...} with the code Skyfire uses for the status
	// (402: PAYMENT_ERROR) and Message. Zero with a Body means 200.
	Status int
	// Message is the envelope's message for Status without Body. Default:
	// "injected fault".
	Message string
	// Body answers with this raw body, such as "garbage" or "{", with
	// Content-Type application/json.
	Body string
	// Latency delays the request by this long, or until the request's
	// context ends or the issuer is closed, whichever comes first; the
	// request then proceeds (normally, or with the other effects).
	Latency time.Duration
	// TimeoutAfterCharge performs the request (for "charge": the charge is
	// made in the ledger), then never answers: the handler blocks until the
	// request's context ends or the issuer is closed, then drops the
	// connection. This is the "charged, but the seller cannot know" case.
	TimeoutAfterCharge bool
	// Hang never answers and does nothing: the handler blocks until the
	// request's context ends or the issuer is closed, then drops the
	// connection.
	Hang bool
	// CloseConnection drops the connection without any response (the
	// client reads EOF).
	CloseConnection bool
	// ResetConnection drops the connection with a TCP reset (the client
	// reads "connection reset by peer"). With ChargeFirst, this is the
	// "charged, then the connection was reset" case.
	ResetConnection bool
	// AmountCharged, for "charge", makes the charge move this amount
	// instead of the one requested, and the 200 answer report it as
	// amountCharged: the case where Skyfire reports a different amount than
	// the seller asked for. It may be "0". The ledger records the charge at
	// this amount, after the usual checks against the token amount and
	// balance (done on this amount). InjectFault panics if it is not a
	// valid amount or the endpoint is not "charge".
	AmountCharged string
	// Header adds these header fields to a Status or Body answer, such as
	// Retry-After on a 429.
	Header http.Header
	// ChargeFirst performs the request normally (charging, for "charge")
	// before CloseConnection or Status/Body take effect, so the client
	// sees a failure although the operation happened.
	ChargeFirst bool
	// Times is how many requests the fault applies to; zero means every
	// request until [Issuer.ClearFaults].
	Times int
	// OnApply, if set, is called from the handler goroutine once per
	// faulted request: before the Latency wait if there is one, otherwise
	// just before the handler blocks, drops the connection or answers (so
	// after a ChargeFirst or TimeoutAfterCharge operation). Tests use it to
	// learn that a request is held, without sleeping.
	OnApply func()
}

// faultEntry is an injected fault and its remaining uses. Guarded by
// Issuer.faultsMu.
type faultEntry struct {
	f    Fault
	left int // remaining uses; 0 means unlimited
}

// InjectFault adds a fault. When several faults match a request, the
// oldest one still active applies. InjectFault panics if the endpoint is
// unknown or Status or Times is out of range.
func (i *Issuer) InjectFault(f Fault) {
	if _, ok := i.counters[f.Endpoint]; !ok {
		panic(fmt.Sprintf("kyapaytest: InjectFault: unknown endpoint %q (want charge, introspect, charges or jwks)", f.Endpoint))
	}
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		panic(fmt.Sprintf("kyapaytest: InjectFault: status %d out of range 200-599", f.Status))
	}
	if f.Times < 0 {
		panic("kyapaytest: InjectFault: negative Times")
	}
	if f.AmountCharged != "" {
		if f.Endpoint != EndpointCharge {
			panic("kyapaytest: InjectFault: AmountCharged needs the charge endpoint")
		}
		if _, err := kyapay.ParseAmount(f.AmountCharged); err != nil {
			panic(fmt.Sprintf("kyapaytest: InjectFault: AmountCharged %q: %v", f.AmountCharged, err))
		}
	}
	i.faultsMu.Lock()
	defer i.faultsMu.Unlock()
	i.faults = append(i.faults, &faultEntry{f: f, left: f.Times})
}

// TransientPaymentErrorMessage is the message of [TransientPaymentError]'s
// answer.
const TransientPaymentErrorMessage = "payment could not be completed: network timeout"

// TransientPaymentError returns a fault that makes the next times charges
// (every charge if times is zero) answer 402 PAYMENT_ERROR with a network
// timeout message, without charging: a decline that says nothing about the
// token's balance, after which the same token can be charged again.
func TransientPaymentError(times int) Fault {
	return Fault{Endpoint: EndpointCharge, Status: http.StatusPaymentRequired,
		Message: TransientPaymentErrorMessage, Times: times}
}

// ClearFaults removes every injected fault. Requests already held by a
// fault stay held until their client gives up or the issuer is closed.
func (i *Issuer) ClearFaults() {
	i.faultsMu.Lock()
	defer i.faultsMu.Unlock()
	i.faults = nil
}

// takeFault returns the fault that applies to the next request on an
// endpoint, using up one of its Times.
func (i *Issuer) takeFault(endpoint string) (Fault, bool) {
	i.faultsMu.Lock()
	defer i.faultsMu.Unlock()
	for j, e := range i.faults {
		if e.f.Endpoint != endpoint {
			continue
		}
		if e.left > 0 {
			e.left--
			if e.left == 0 {
				i.faults = append(i.faults[:j:j], i.faults[j+1:]...)
			}
		}
		return e.f, true
	}
	return Fault{}, false
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// endpoint wraps an endpoint handler with request counting, body
// buffering, fault injection, the method check and API-key auth.
func (i *Issuer) endpoint(name, method string, auth bool, h http.HandlerFunc) http.Handler {
	counter := i.counters[name]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		counter.Add(1)
		// Read the whole body now: the server only notices a client that
		// went away once the body is consumed, and blocking faults rely on
		// the request context ending.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return
		}
		if len(body) > maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, CodeBadRequest, "request body too large", nil)
			return
		}
		serve := func(w http.ResponseWriter) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			if r.Method != method {
				w.Header().Set("Allow", method)
				writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed", nil)
				return
			}
			if auth && !i.authorized(r) {
				writeError(w, http.StatusUnauthorized, CodeNotAuthorized, "missing or invalid "+APIKeyHeader+" header", nil)
				return
			}
			h(w, r)
		}
		f, ok := i.takeFault(name)
		if !ok {
			serve(w)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), faultKey{}, &f))
		i.applyFault(w, r, f, serve)
	})
}

// faultKey is the request context key of the fault applied to a request.
type faultKey struct{}

// faultOf returns the fault applied to r, if any.
func faultOf(r *http.Request) (*Fault, bool) {
	f, ok := r.Context().Value(faultKey{}).(*Fault)
	return f, ok
}

// authorized reports whether the request carries one of the seller API
// keys.
func (i *Issuer) authorized(r *http.Request) bool {
	got := []byte(r.Header.Get(APIKeyHeader))
	ok := 0
	for _, k := range *i.api.keys.Load() {
		ok |= subtle.ConstantTimeCompare(got, []byte(k))
	}
	return ok == 1
}

// applyFault serves a request according to f; serve performs the real
// operation.
func (i *Issuer) applyFault(w http.ResponseWriter, r *http.Request, f Fault, serve func(http.ResponseWriter)) {
	notified := false
	notify := func() {
		if f.OnApply != nil && !notified {
			notified = true
			f.OnApply()
		}
	}
	if f.Latency > 0 {
		notify()
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-i.done:
		}
		t.Stop()
	}
	answers := f.Status != 0 || f.Body != ""
	blocks := f.Hang || f.TimeoutAfterCharge
	drops := f.CloseConnection || f.ResetConnection
	if f.TimeoutAfterCharge || (f.ChargeFirst && (blocks || drops || answers)) {
		serve(httptest.NewRecorder())
	}
	switch {
	case blocks:
		notify()
		select {
		case <-r.Context().Done():
		case <-i.done:
		}
		dropConnection(w)
	case f.ResetConnection:
		notify()
		resetConnection(w)
	case f.CloseConnection:
		notify()
		dropConnection(w)
	case answers:
		notify()
		for k, v := range f.Header {
			w.Header()[http.CanonicalHeaderKey(k)] = v
		}
		status := f.Status
		if status == 0 {
			status = http.StatusOK
		}
		if f.Body == "" && status >= 400 {
			msg := f.Message
			if msg == "" {
				msg = "injected fault"
			}
			writeError(w, status, codeForStatus(status), msg, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, f.Body)
	default:
		notify()
		serve(w)
	}
}

// resetConnection resets the client connection (TCP RST) without a
// response.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: resets the stream
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST instead of FIN
	}
	conn.Close()
}

// dropConnection closes the client connection without a response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
		return
	}
	// Not hijackable (HTTP/2): abort the handler, which resets the stream.
	panic(http.ErrAbortHandler)
}
