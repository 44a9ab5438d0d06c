package kyapaytest_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// guard bounds waits on events that must happen; it is a safety net that
// fails a broken test instead of hanging, not a way to wait for time.
const guard = 10 * time.Second

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// signal returns a channel and an OnApply hook that closes it.
func signal() (chan struct{}, func()) {
	ch := make(chan struct{})
	return ch, func() { close(ch) }
}

func chargeBody(tok string) map[string]any {
	return map[string]any{"token": tok, "chargeAmount": "0.01"}
}

func TestFaultStatusAndBody(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)

	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 503, Times: 1})
	res := charge(t, iss, tok, "0.01")
	wantStatus(t, res, 503, "SERVICE_UNAVAILABLE")
	wantStatus(t, charge(t, iss, tok, "0.01"), 200, "") // Times: 1 used up
	if iss.ChargeCount() != 1 || iss.Requests(kyapaytest.EndpointCharge) != 2 {
		t.Errorf("ChargeCount = %d, Requests = %d; want 1, 2", iss.ChargeCount(), iss.Requests(kyapaytest.EndpointCharge))
	}

	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 402, Times: 2})
	wantStatus(t, charge(t, iss, tok, "0.01"), 402, kyapaytest.CodePaymentError)
	wantStatus(t, charge(t, iss, tok, "0.01"), 402, kyapaytest.CodePaymentError)
	wantStatus(t, charge(t, iss, tok, "0.01"), 200, "")

	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointIntrospect, Body: "garbage"})
	for n := 0; n < 3; n++ { // Times: 0 applies until cleared
		res := call(t, iss, http.MethodPost, kyapaytest.IntrospectPath, map[string]any{"token": tok})
		if res.Status != 200 || res.Raw != "garbage" {
			t.Errorf("status %d body %q; want 200 garbage", res.Status, res.Raw)
		}
	}
	iss.ClearFaults()
	if res := call(t, iss, http.MethodPost, kyapaytest.IntrospectPath, map[string]any{"token": tok}); res.Body["isValid"] != true {
		t.Errorf("after ClearFaults: %s", res.Raw)
	}

	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharges, Status: 500, Body: "<html>oops</html>", Times: 1})
	res = call(t, iss, http.MethodGet, kyapaytest.ChargesPathPrefix+kyapaytest.TokenID(tok)+"/charges", nil)
	if res.Status != 500 || res.Raw != "<html>oops</html>" {
		t.Errorf("status %d body %q", res.Status, res.Raw)
	}

	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointJWKS, Status: 500, Times: 1})
	resp, err := iss.Client().Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || iss.JWKSFetches() != 1 {
		t.Errorf("JWKS status %d, fetches %d; want 500, 1", resp.StatusCode, iss.JWKSFetches())
	}
	fetchJWKS(t, iss)
	if iss.JWKSFetches() != 2 {
		t.Errorf("JWKSFetches = %d; want 2", iss.JWKSFetches())
	}
}

func TestFaultChargeFirstThenError(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Status: 502, ChargeFirst: true, Times: 1})
	wantStatus(t, charge(t, iss, tok, "0.01"), 502, "BAD_GATEWAY")
	if iss.ChargeCount() != 1 {
		t.Errorf("ChargeCount = %d; want 1", iss.ChargeCount())
	}
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)

	const latency = 30 * time.Millisecond
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Latency: latency, Times: 1})
	start := time.Now()
	res := charge(t, iss, tok, "0.01")
	if elapsed := time.Since(start); elapsed < latency {
		t.Errorf("answered after %v; want at least %v", elapsed, latency)
	}
	wantStatus(t, res, 200, "")
	if iss.ChargeCount() != 1 {
		t.Errorf("ChargeCount = %d; want 1", iss.ChargeCount())
	}
}

func TestFaultLatencyEndsWithClient(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	tok := iss.Mint(kyapay.TypePay)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// An hour of latency, cut short when the client gives up; the request
	// then proceeds and charges.
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Latency: time.Hour, OnApply: cancel})
	_, err := tryCall(ctx, iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath, chargeBody(tok))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	iss.Close() // waits for the handler
	if iss.ChargeCount() != 1 {
		t.Errorf("ChargeCount = %d; want 1", iss.ChargeCount())
	}
}

func TestFaultHangEndsWithClient(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	tok := iss.Mint(kyapay.TypePay)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, Hang: true, OnApply: cancel})
	_, err := tryCall(ctx, iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath, chargeBody(tok))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	iss.Close()
	if iss.ChargeCount() != 0 {
		t.Errorf("ChargeCount = %d; want 0 (Hang never charges)", iss.ChargeCount())
	}
}

func TestFaultTimeoutAfterCharge(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
	jti := kyapaytest.TokenID(tok)

	charged, onApply := signal()
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true, Times: 1, OnApply: onApply})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := tryCall(ctx, iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath, chargeBody(tok))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want context.DeadlineExceeded", err)
	}
	waitFor(t, charged, "the charge")
	if got := iss.ChargesFor(jti); len(got) != 1 {
		t.Fatalf("%d charges; want exactly 1", len(got))
	}
	if b, _ := iss.Balance(jti); b.String() != "0.99" {
		t.Errorf("balance = %v; want 0.99", b)
	}
	// There is no idempotency: a retry charges again.
	wantStatus(t, charge(t, iss, tok, "0.01"), 200, "")
	if n := len(iss.ChargesFor(jti)); n != 2 {
		t.Errorf("%d charges after retry; want 2", n)
	}
}

func TestFaultCloseConnection(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)

	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, CloseConnection: true, Times: 1})
	if _, err := tryCall(t.Context(), iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath, chargeBody(tok)); err == nil {
		t.Fatal("no error from a dropped connection")
	}
	if iss.ChargeCount() != 0 {
		t.Errorf("ChargeCount = %d; want 0", iss.ChargeCount())
	}
	iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, CloseConnection: true, ChargeFirst: true, Times: 1})
	if _, err := tryCall(t.Context(), iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath, chargeBody(tok)); err == nil {
		t.Fatal("no error from a dropped connection")
	}
	if iss.ChargeCount() != 1 {
		t.Errorf("ChargeCount = %d; want 1", iss.ChargeCount())
	}
	if iss.Requests(kyapaytest.EndpointCharge) != 2 {
		t.Errorf("Requests = %d; want 2", iss.Requests(kyapaytest.EndpointCharge))
	}
}

func TestCloseWithHangingRequests(t *testing.T) {
	t.Parallel()
	for _, f := range []kyapaytest.Fault{
		{Endpoint: kyapaytest.EndpointCharge, Hang: true},
		{Endpoint: kyapaytest.EndpointCharge, TimeoutAfterCharge: true},
		{Endpoint: kyapaytest.EndpointCharge, Latency: time.Hour, Hang: true},
		{Endpoint: kyapaytest.EndpointJWKS, Hang: true},
	} {
		iss := kyapaytest.NewIssuer()
		tok := iss.Mint(kyapay.TypePay)
		held, onApply := signal()
		f.OnApply = onApply
		iss.InjectFault(f)

		errc := make(chan error, 1)
		go func() {
			if f.Endpoint == kyapaytest.EndpointJWKS {
				resp, err := iss.Client().Get(iss.JWKSURL())
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
				return
			}
			_, err := tryCall(context.Background(), iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath, chargeBody(tok))
			errc <- err
		}()
		waitFor(t, held, "the request to be held")

		closed := make(chan struct{})
		go func() { iss.Close(); iss.Close(); close(closed) }()
		waitFor(t, closed, "Close")
		select {
		case err := <-errc:
			if err == nil {
				t.Errorf("%+v: request succeeded; want an error", f)
			}
		case <-time.After(guard):
			t.Fatalf("%+v: client still blocked after Close", f)
		}
	}
}
