package kyapayotel_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware/kyapayotel"
)

// refusingTransport is an *http.Transport whose first refuse dials go to a
// closed port (connection refused, before any connection exists) and later
// dials to the requested address. It counts dials.
func refusingTransport(t *testing.T, refuse int32, dials *atomic.Int32) *http.Transport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= refuse {
			return d.DialContext(ctx, network, closed)
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// droppingListener accepts connections and closes each at once, before
// reading anything: the connection was obtained, so a request on it may
// count as sent. It returns the base URL and the number of accepts.
func droppingListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String(), &accepts
}

// hidingTransport runs each request with a context that has lost its
// httptrace hooks, as a careless wrapper would: the charge client then
// sees no connection events and can prove nothing.
type hidingTransport struct{ base http.RoundTripper }

func (h hidingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return h.base.RoundTrip(r.WithContext(context.WithoutCancel(detach{r.Context()})))
}

// detach keeps a context's deadline and cancellation but none of its
// values (so no httptrace.ClientTrace).
type detach struct{ context.Context }

func (detach) Value(any) any { return nil }

// The charge client retries a failure that provably happened before the
// request left (no connection obtained), and never retries one after; its
// proof comes from httptrace events, which must still reach it when the
// HTTP client's transport is otelhttp's. Each case counts the attempts
// that reached the fake issuer (or the listener), and the spans show one
// kyapay.charge span with one otelhttp client span per attempt under it.
func TestNotSentRetryThroughOtelhttp(t *testing.T) {
	t.Parallel()
	type wrap struct {
		name string
		// transport wraps base; hooks counts GetConn calls of a client
		// trace the wrapper itself adds, when it adds one.
		transport func(base http.RoundTripper, s *sdk, hooks *atomic.Int32) http.RoundTripper
	}
	wraps := []wrap{
		{"otelhttp", func(base http.RoundTripper, s *sdk, _ *atomic.Int32) http.RoundTripper {
			return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(s.tp), otelhttp.WithMeterProvider(noop.NewMeterProvider()))
		}},
		{"otelhttp with its own client trace", func(base http.RoundTripper, s *sdk, hooks *atomic.Int32) http.RoundTripper {
			return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(s.tp), otelhttp.WithMeterProvider(noop.NewMeterProvider()),
				otelhttp.WithClientTrace(func(context.Context) *httptrace.ClientTrace {
					return &httptrace.ClientTrace{GetConn: func(string) { hooks.Add(1) }}
				}))
		}},
	}
	for _, w := range wraps {
		t.Run(w.name+"/refused twice then sent", func(t *testing.T) {
			t.Parallel()
			s := newSDK(t)
			iss := kyapaytest.NewIssuer()
			t.Cleanup(iss.Close)
			var dials, hooks atomic.Int32
			c := newWrappedClient(t, s, iss.APIBaseURL(), w.transport(refusingTransport(t, 2, &dials), s, &hooks))

			r, err := c.Charge(context.Background(), iss.Mint(kyapay.TypePay), kyapay.MustParseAmount("0.01"))
			if err != nil {
				t.Fatalf("Charge: %v; want success after two not-sent retries", err)
			}
			if r.AmountCharged.String() != "0.01" {
				t.Errorf("charged %s; want 0.01", r.AmountCharged)
			}
			if d, n, cc := dials.Load(), iss.Requests(kyapaytest.EndpointCharge), iss.ChargeCount(); d != 3 || n != 1 || cc != 1 {
				t.Errorf("%d dials, %d charge requests at the issuer, %d charges; want 3, 1, 1", d, n, cc)
			}
			wantHooks(t, w.name, &hooks, 3)
			wantAttempts(t, s.spans.GetSpans(), "paid", 3, 1)
		})
		t.Run(w.name+"/always refused", func(t *testing.T) {
			t.Parallel()
			s := newSDK(t)
			iss := kyapaytest.NewIssuer()
			t.Cleanup(iss.Close)
			var dials, hooks atomic.Int32
			c := newWrappedClient(t, s, iss.APIBaseURL(), w.transport(refusingTransport(t, 1000, &dials), s, &hooks))

			_, err := c.Charge(context.Background(), iss.Mint(kyapay.TypePay), kyapay.MustParseAmount("0.01"))
			if !errors.Is(err, charge.ErrNotSent) {
				t.Fatalf("Charge: %v; want not sent", err)
			}
			if d, n := dials.Load(), iss.Requests(kyapaytest.EndpointCharge); d != 3 || n != 0 {
				t.Errorf("%d dials, %d charge requests at the issuer; want 3 (1 + MaxRetries) and 0", d, n)
			}
			wantHooks(t, w.name, &hooks, 3)
			wantAttempts(t, s.spans.GetSpans(), "not_sent", 3, 0)
		})
		t.Run(w.name+"/dropped after sending", func(t *testing.T) {
			t.Parallel()
			s := newSDK(t)
			iss := kyapaytest.NewIssuer()
			t.Cleanup(iss.Close)
			// The issuer charges, then drops the connection unanswered.
			iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, CloseConnection: true, ChargeFirst: true, Times: 1})
			var dials, hooks atomic.Int32
			c := newWrappedClient(t, s, iss.APIBaseURL(), w.transport(refusingTransport(t, 0, &dials), s, &hooks))

			_, err := c.Charge(context.Background(), iss.Mint(kyapay.TypePay), kyapay.MustParseAmount("0.01"))
			if !errors.Is(err, charge.ErrUnknownOutcome) {
				t.Fatalf("Charge: %v; want outcome unknown", err)
			}
			if d, n, cc := dials.Load(), iss.Requests(kyapaytest.EndpointCharge), iss.ChargeCount(); d != 1 || n != 1 || cc != 1 {
				t.Errorf("%d dials, %d charge requests, %d charges; want 1, 1, 1 (never retried: the money moved)", d, n, cc)
			}
			wantHooks(t, w.name, &hooks, 1)
			wantAttempts(t, s.spans.GetSpans(), "unknown", 1, 0)
		})
		t.Run(w.name+"/dropped on accept", func(t *testing.T) {
			t.Parallel()
			s := newSDK(t)
			base, accepts := droppingListener(t)
			var dials, hooks atomic.Int32
			c := newWrappedClient(t, s, base, w.transport(refusingTransport(t, 0, &dials), s, &hooks))

			_, err := c.Charge(context.Background(), "tok", kyapay.MustParseAmount("0.01"))
			if !errors.Is(err, charge.ErrUnknownOutcome) {
				t.Fatalf("Charge: %v; want outcome unknown (the connection was obtained)", err)
			}
			if d, a := dials.Load(), accepts.Load(); d != 1 || a != 1 {
				t.Errorf("%d dials, %d accepts; want 1 and 1 (no retry once connected)", d, a)
			}
			wantAttempts(t, s.spans.GetSpans(), "unknown", 1, 0)
		})
	}

	// Control: a wrapper that loses the httptrace hooks turns the same
	// refused dial into an unknown outcome with no retry, so the cases
	// above would fail if otelhttp did that.
	t.Run("control: a wrapper hiding httptrace", func(t *testing.T) {
		t.Parallel()
		s := newSDK(t)
		iss := kyapaytest.NewIssuer()
		t.Cleanup(iss.Close)
		var dials atomic.Int32
		c := newWrappedClient(t, s, iss.APIBaseURL(), hidingTransport{refusingTransport(t, 2, &dials)})
		_, err := c.Charge(context.Background(), iss.Mint(kyapay.TypePay), kyapay.MustParseAmount("0.01"))
		if !errors.Is(err, charge.ErrUnknownOutcome) || dials.Load() != 1 {
			t.Errorf("got %v after %d dials; want outcome unknown after 1 dial", err, dials.Load())
		}
	})
}

// newWrappedClient is a charge client on rt, traced by WrapCharger.
func newWrappedClient(t *testing.T, s *sdk, base string, rt http.RoundTripper) interface {
	Charge(context.Context, string, kyapay.Amount) (charge.Receipt, error)
} {
	t.Helper()
	if _, err := url.Parse(base); err != nil {
		t.Fatal(err)
	}
	cc, err := charge.New(charge.Config{BaseURL: base, APIKey: charge.APIKey(kyapaytest.DefaultAPIKey),
		HTTPClient: &http.Client{Transport: rt}, MaxRetries: 2, RetryBackoff: func(int) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	return kyapayotel.WrapCharger(cc, s.tp)
}

// wantHooks checks that a client trace added by the wrapper saw every
// connection attempt alongside the charge client's own.
func wantHooks(t *testing.T, wrapName string, hooks *atomic.Int32, n int32) {
	t.Helper()
	if wrapName == "otelhttp" {
		return
	}
	if got := hooks.Load(); got != n {
		t.Errorf("the wrapper's own client trace saw %d GetConn; want %d", got, n)
	}
}

// wantAttempts checks for one kyapay.charge span with the outcome and
// attempts client spans under it, the last ok of them successful.
func wantAttempts(t *testing.T, spans tracetest.SpanStubs, outcome string, attempts, ok int) {
	t.Helper()
	var parent *tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == kyapayotel.SpanCharge {
			if parent != nil {
				t.Fatalf("two charge spans:\n%s", describe(spans))
			}
			parent = &spans[i]
		}
	}
	if parent == nil {
		t.Fatalf("no charge span:\n%s", describe(spans))
	}
	if got := spanAttrs(*parent)["kyapay.outcome"]; got != outcome {
		t.Errorf("charge span outcome %q; want %q", got, outcome)
	}
	var children, okChildren int
	for _, sp := range spans {
		if sp.Name == kyapayotel.SpanCharge {
			continue
		}
		if sp.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("span %s is not under the charge span:\n%s", sp.Name, describe(spans))
			continue
		}
		children++
		if sp.Status.Code != codes.Error {
			okChildren++
		}
	}
	if children != attempts || okChildren != ok {
		t.Errorf("%d HTTP client spans (%d without error) under the charge span; want %d (%d):\n%s",
			children, okChildren, attempts, ok, describe(spans))
	}
}

// stubCharger charges whatever it is asked.
type stubCharger struct{}

func (stubCharger) Charge(_ context.Context, _ string, a kyapay.Amount) (charge.Receipt, error) {
	return charge.Receipt{AmountCharged: a}, nil
}

func (stubCharger) ChargeServicePrice(context.Context, string) (charge.Receipt, error) {
	return charge.Receipt{AmountCharged: kyapay.MustParseAmount("0.5")}, nil
}
