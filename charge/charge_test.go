package charge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
)

func TestChargeSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    Receipt
		wantBal string
	}{
		{
			name: "all fields",
			body: `{"amountCharged":"0.01","remainingBalance":"4.99","transactionId":"tx_123"}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("0.01"), RemainingBalance: kyapay.MustParseAmount("4.99"),
				HasRemainingBalance: true, TransactionID: "tx_123"},
		},
		{
			name: "documented shape without transactionId",
			body: `{"amountCharged":"0.01","remainingBalance":"4.99"}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("0.01"), RemainingBalance: kyapay.MustParseAmount("4.99"),
				HasRemainingBalance: true},
		},
		{
			name: "no remainingBalance",
			body: `{"amountCharged":"0.01","transactionId":"tx_9"}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("0.01"), TransactionID: "tx_9"},
		},
		{
			name: "null remainingBalance and transactionId",
			body: `{"amountCharged":"0.01","remainingBalance":null,"transactionId":null}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("0.01")},
		},
		{
			name: "zero balance left",
			body: `{"amountCharged":"5.000000","remainingBalance":"0"}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("5"), HasRemainingBalance: true},
		},
		{
			name: "numeric transactionId and unknown fields",
			body: `{"amountCharged":"0.01","transactionId":12345,"extra":{"a":[1,2]}}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("0.01"), TransactionID: "12345"},
		},
		{
			name: "amounts as bare JSON numbers",
			body: `{"amountCharged":0.01,"remainingBalance":4.99}`,
			want: Receipt{AmountCharged: kyapay.MustParseAmount("0.01"), RemainingBalance: kyapay.MustParseAmount("4.99"),
				HasRemainingBalance: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, reply(200, tt.body))
			c := newTestClient(t, api.URL, func(cfg *Config) { cfg.UserAgent = "test-agent/1" })
			got, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if got != tt.want {
				t.Errorf("got receipt %+v; want %+v", got, tt.want)
			}
			req := api.last(t)
			if req.Method != http.MethodPost || req.Path != "/api/v1/tokens/charge" {
				t.Errorf("got %s %s; want POST /api/v1/tokens/charge", req.Method, req.Path)
			}
			if got := req.Header.Get("skyfire-api-key"); got != testKey {
				t.Errorf("got skyfire-api-key %q; want the key", got)
			}
			if got := req.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("got Content-Type %q; want application/json", got)
			}
			if got := req.Header.Get("User-Agent"); got != "test-agent/1" {
				t.Errorf("got User-Agent %q; want test-agent/1", got)
			}
			if want := `{"token":"` + testToken + `","chargeAmount":"0.01"}`; string(req.Body) != want {
				t.Errorf("got body %s; want %s", req.Body, want)
			}
		})
	}
}

func TestChargeServicePriceOmitsChargeAmount(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.002","remainingBalance":"0.998"}`))
	c := newTestClient(t, api.URL, nil)
	got, err := c.ChargeServicePrice(context.Background(), testToken)
	if err != nil {
		t.Fatalf("ChargeServicePrice: %v", err)
	}
	if got.AmountCharged.String() != "0.002" || got.RemainingBalance.String() != "0.998" {
		t.Errorf("got receipt %+v; want 0.002 charged, 0.998 left", got)
	}
	req := api.last(t)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &m); err != nil {
		t.Fatalf("server got invalid JSON %q: %v", req.Body, err)
	}
	if _, ok := m["chargeAmount"]; ok {
		t.Errorf("got chargeAmount in %s; want it omitted", req.Body)
	}
	if want := `{"token":"` + testToken + `"}`; string(req.Body) != want {
		t.Errorf("got body %s; want %s", req.Body, want)
	}
}

func TestChargeExactDecimalRoundTrip(t *testing.T) {
	t.Parallel()
	amounts := []string{"0.000001", "0.01", "0.1", "0.3", "1", "15", "4.999999", "123456789012.999999", "0.010000", "15.000000"}
	for _, s := range amounts {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			amt := kyapay.MustParseAmount(s)
			// The server echoes chargeAmount back as amountCharged, exactly
			// as it received it, and reports a fixed balance.
			api := newFakeAPI(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
				var req struct {
					ChargeAmount json.RawMessage `json:"chargeAmount"`
				}
				_ = json.Unmarshal(body, &req)
				_, _ = io.WriteString(w, `{"amountCharged":`+string(req.ChargeAmount)+`,"remainingBalance":"0.000001"}`)
			})
			c := newTestClient(t, api.URL, nil)
			got, err := c.Charge(context.Background(), testToken, amt)
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			var sent struct {
				ChargeAmount any `json:"chargeAmount"`
			}
			if err := json.Unmarshal(api.last(t).Body, &sent); err != nil {
				t.Fatal(err)
			}
			if str, ok := sent.ChargeAmount.(string); !ok || str != amt.String() {
				t.Errorf("sent chargeAmount %#v; want the JSON string %q", sent.ChargeAmount, amt.String())
			}
			if got.AmountCharged.Cmp(amt) != 0 || got.AmountCharged.Micros() != amt.Micros() {
				t.Errorf("got amountCharged %s; want exactly %s", got.AmountCharged, amt)
			}
			if got.RemainingBalance.Micros() != 1 {
				t.Errorf("got remainingBalance %s; want 0.000001", got.RemainingBalance)
			}
		})
	}
}

func TestChargeInvalidArguments(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, reply(200, `{"amountCharged":"1"}`))
	c := newTestClient(t, api.URL, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"zero amount", func() error { _, err := c.Charge(ctx, testToken, kyapay.Amount{}); return err }},
		{"empty token", func() error { _, err := c.Charge(ctx, "", kyapay.MustParseAmount("1")); return err }},
		{"empty token service price", func() error { _, err := c.ChargeServicePrice(ctx, ""); return err }},
		{"huge token", func() error { _, err := c.ChargeServicePrice(ctx, strings.Repeat("a", maxTokenBytes+1)); return err }},
		{"empty token introspect", func() error { _, err := c.Introspect(ctx, ""); return err }},
		{"empty jti", func() error { _, err := c.TokenCharges(ctx, "", "", 0); return err }},
		{"dot jti", func() error { _, err := c.TokenCharges(ctx, ".", "", 0); return err }},
		{"dotdot jti", func() error { _, err := c.TokenCharges(ctx, "..", "", 0); return err }},
		{"long jti", func() error { _, err := c.TokenCharges(ctx, strings.Repeat("a", maxJTIBytes+1), "", 0); return err }},
		{"long cursor", func() error { _, err := c.TokenCharges(ctx, "j", strings.Repeat("c", maxCursorBytes+1), 0); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			e := asError(t, err)
			wantOutcome(t, err, OutcomeNotSent)
			if e.Reason != ReasonInvalidRequest {
				t.Errorf("got reason %v; want invalid_request", e.Reason)
			}
		})
	}
	if n := api.hits.Load(); n != 0 {
		t.Errorf("server got %d requests; want 0", n)
	}
}

func TestChargeTokenEscaping(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, reply(200, `{"amountCharged":"1"}`))
	c := newTestClient(t, api.URL, nil)
	odd := "a\"b\\c\n<d>&é\x01"
	if _, err := c.Charge(context.Background(), odd, kyapay.MustParseAmount("1")); err != nil {
		t.Fatal(err)
	}
	var got struct{ Token string }
	if err := json.Unmarshal(api.last(t).Body, &got); err != nil {
		t.Fatalf("server got invalid JSON %q: %v", api.last(t).Body, err)
	}
	if got.Token != odd {
		t.Errorf("server got token %q; want %q", got.Token, odd)
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		body        string
		outcome     Outcome
		reason      Reason
		code        string
		message     string
		details     map[string]string
		insufficent bool
	}{
		{"402 PAYMENT_ERROR", 402, `{"code":"PAYMENT_ERROR","message":"Charge amount exceeds token value"}`,
			OutcomeDeclined, ReasonInsufficientBalance, "PAYMENT_ERROR", "Charge amount exceeds token value", nil, true},
		{"400 PAYMENT_DECLINED", 400, `{"code":"PAYMENT_DECLINED","message":"declined"}`,
			OutcomeDeclined, ReasonPaymentFailed, "PAYMENT_DECLINED", "declined", nil, false},
		{"PAYMENT_ERROR on 401 code wins", 401, `{"code":"PAYMENT_ERROR","message":"m"}`,
			OutcomeDeclined, ReasonPaymentFailed, "PAYMENT_ERROR", "m", nil, false},
		{"402 PAYMENT_ERROR network timeout", 402, `{"code":"PAYMENT_ERROR","message":"Payment could not be completed: network timeout"}`,
			OutcomeDeclined, ReasonPaymentFailed, "PAYMENT_ERROR", "Payment could not be completed: network timeout", nil, false},
		{"402 PAYMENT_ERROR remaining balance", 402, `{"code":"PAYMENT_ERROR","message":"charge amount 0.02 exceeds the remaining balance 0.01"}`,
			OutcomeDeclined, ReasonInsufficientBalance, "PAYMENT_ERROR", "charge amount 0.02 exceeds the remaining balance 0.01", nil, true},
		{"bare 402", 402, ``, OutcomeDeclined, ReasonPaymentFailed, "", "", nil, false},
		{"402 plain text", 402, "ERROR: The given pay token is depleted.\n",
			OutcomeDeclined, ReasonInsufficientBalance, "", "ERROR: The given pay token is depleted.", nil, true},
		{"401 NOT_AUTHORIZED", 401, `{"code":"NOT_AUTHORIZED","message":"Invalid token"}`,
			OutcomeDeclined, ReasonAPIKeyRejected, "NOT_AUTHORIZED", "Invalid token", nil, false},
		{"403 FORBIDDEN", 403, `{"code":"FORBIDDEN","message":"no"}`,
			OutcomeDeclined, ReasonTokenRejected, "FORBIDDEN", "no", nil, false},
		{"bare 401", 401, `{}`, OutcomeDeclined, ReasonAPIKeyRejected, "", "", nil, false},
		{"bare 403", 403, ``, OutcomeDeclined, ReasonTokenRejected, "", "", nil, false},
		{"400 BAD_REQUEST", 400, `{"code":"BAD_REQUEST","message":"wrong role"}`,
			OutcomeDeclined, ReasonInvalidRequest, "BAD_REQUEST", "wrong role", nil, false},
		{"400 unknown code falls back to status", 400, `{"code":"SOMETHING_NEW","message":"x"}`,
			OutcomeDeclined, ReasonInvalidRequest, "SOMETHING_NEW", "x", nil, false},
		{"422 VALIDATION_ERROR with details", 422,
			`{"code":"VALIDATION_ERROR","message":"Validation failed","details":{"chargeAmount":{"message":"must be positive"},"token":"required"}}`,
			OutcomeDeclined, ReasonInvalidRequest, "VALIDATION_ERROR", "Validation failed",
			map[string]string{"chargeAmount": "must be positive", "token": "required"}, false},
		{"404 NOT_FOUND", 404, `{"code":"NOT_FOUND","message":"gone"}`,
			OutcomeDeclined, ReasonInvalidRequest, "NOT_FOUND", "gone", nil, false},
		{"bare 404", 404, `404 page not found`, OutcomeDeclined, ReasonInvalidRequest, "", "404 page not found", nil, false},
		{"409 NOT_ELIGIBLE", 409, `{"code":"NOT_ELIGIBLE","message":"pending approval"}`,
			OutcomeDeclined, ReasonNotEligible, "NOT_ELIGIBLE", "pending approval", nil, false},
		{"bare 409", 409, ``, OutcomeDeclined, ReasonNotEligible, "", "", nil, false},
		{"429", 429, `{"code":"BAD_REQUEST","message":"slow down"}`,
			OutcomeDeclined, ReasonRateLimited, "BAD_REQUEST", "slow down", nil, false},
		{"RATE_LIMITED code on 400", 400, `{"code":"RATE_LIMITED"}`,
			OutcomeDeclined, ReasonRateLimited, "RATE_LIMITED", "", nil, false},
		{"418 other 4xx", 418, `{"message":"teapot"}`, OutcomeDeclined, ReasonOther, "", "teapot", nil, false},
		{"nested error object", 402, `{"error":{"code":"PAYMENT_ERROR","message":"depleted"}}`,
			OutcomeDeclined, ReasonInsufficientBalance, "PAYMENT_ERROR", "depleted", nil, true},
		{"object that is not an envelope", 400, `{"detail":"odd"}`,
			OutcomeDeclined, ReasonInvalidRequest, "", `{"detail":"odd"}`, nil, false},
		{"error field instead of message", 401, `{"error":"Invalid Pay token"}`,
			OutcomeDeclined, ReasonAPIKeyRejected, "", "Invalid Pay token", nil, false},
		{"500", 500, `{"code":"INTERNAL","message":"boom"}`, OutcomeUnknown, ReasonServer, "INTERNAL", "boom", nil, false},
		{"502 html", 502, "<html>\r\n<h1>Bad Gateway</h1></html>", OutcomeUnknown, ReasonServer, "", "<html>  <h1>Bad Gateway</h1></html>", nil, false},
		{"503 PAYMENT_ERROR still unknown", 503, `{"code":"PAYMENT_ERROR","message":"m"}`,
			OutcomeUnknown, ReasonServer, "PAYMENT_ERROR", "m", nil, false},
		{"504", 504, ``, OutcomeUnknown, ReasonServer, "", "", nil, false},
		{"302 not followed", 302, ``, OutcomeUnknown, ReasonBadResponse, "", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, api.URL, func(cfg *Config) { cfg.MaxRetries = 5 })
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			e := asError(t, err)
			wantOutcome(t, err, tt.outcome)
			if e.Reason != tt.reason || ReasonOf(err) != tt.reason {
				t.Errorf("got reason %v; want %v", e.Reason, tt.reason)
			}
			if e.Op != "charge" || e.Status != tt.status || e.Code != tt.code || e.Message != tt.message {
				t.Errorf("got op %q status %d code %q message %q; want charge %d %q %q",
					e.Op, e.Status, e.Code, e.Message, tt.status, tt.code, tt.message)
			}
			if len(e.Details) != len(tt.details) {
				t.Errorf("got details %v; want %v", e.Details, tt.details)
			}
			for k, v := range tt.details {
				if e.Details[k] != v {
					t.Errorf("got details[%q] = %q; want %q", k, e.Details[k], v)
				}
			}
			if got := errors.Is(err, ErrInsufficientBalance); got != tt.insufficent {
				t.Errorf("errors.Is(err, ErrInsufficientBalance) = %v; want %v", got, tt.insufficent)
			}
			if n := api.hits.Load(); n != 1 {
				t.Errorf("server got %d requests; want exactly 1 (no retry after an answer)", n)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	other := newFakeAPI(t, reply(200, `{"amountCharged":"0.01"}`))
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		http.Redirect(w, r, other.URL+"/api/v1/tokens/charge", http.StatusTemporaryRedirect)
	})
	c := newTestClient(t, api.URL, nil)
	_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
	wantOutcome(t, err, OutcomeUnknown)
	if n := other.hits.Load(); n != 0 {
		t.Errorf("redirect target got %d requests (with the API key); want 0", n)
	}
}

func TestMalformedSuccessIsUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"not json", 200, `charged!`},
		{"empty body", 200, ``},
		{"204 no content", 204, ``},
		{"json null", 200, `null`},
		{"json array", 200, `[{"amountCharged":"0.01"}]`},
		{"json string", 200, `"0.01"`},
		{"empty object", 200, `{}`},
		{"amountCharged null", 200, `{"amountCharged":null}`},
		{"exponent amount", 200, `{"amountCharged":"1e-2"}`},
		{"negative amount", 200, `{"amountCharged":"-0.01"}`},
		{"seven decimals", 200, `{"amountCharged":"0.0000001"}`},
		{"float number", 200, `{"amountCharged":1e-2}`},
		{"bool amount", 200, `{"amountCharged":true}`},
		{"bad balance", 200, `{"amountCharged":"0.01","remainingBalance":"NaN"}`},
		{"trailing garbage", 200, `{"amountCharged":"0.01"} {}`},
		{"truncated", 201, `{"amountCharged":"0.0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, reply(tt.status, tt.body))
			c := newTestClient(t, api.URL, nil)
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			e := asError(t, err)
			wantOutcome(t, err, OutcomeUnknown)
			if e.Reason != ReasonBadResponse || e.Status != tt.status {
				t.Errorf("got reason %v status %d; want bad_response %d", e.Reason, e.Status, tt.status)
			}
			if n := api.hits.Load(); n != 1 {
				t.Errorf("server got %d requests; want 1", n)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	big := `{"amountCharged":"0.01","pad":"` + strings.Repeat("x", 4096) + `"}`
	tests := []struct {
		name    string
		status  int
		chunked bool
		outcome Outcome
		reason  Reason
	}{
		{"2xx with length", 200, false, OutcomeUnknown, ReasonBadResponse},
		{"2xx chunked", 200, true, OutcomeUnknown, ReasonBadResponse},
		{"402 with length", 402, false, OutcomeDeclined, ReasonPaymentFailed},
		{"402 chunked", 402, true, OutcomeDeclined, ReasonPaymentFailed},
		{"500 chunked", 500, true, OutcomeUnknown, ReasonServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				w.WriteHeader(tt.status)
				if tt.chunked {
					for i := 0; i < len(big); i += 512 {
						_, _ = io.WriteString(w, big[i:min(i+512, len(big))])
						w.(http.Flusher).Flush()
					}
					return
				}
				_, _ = io.WriteString(w, big)
			})
			c := newTestClient(t, api.URL, func(cfg *Config) { cfg.MaxResponseBytes = 1024 })
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			e := asError(t, err)
			wantOutcome(t, err, tt.outcome)
			if e.Reason != tt.reason || !strings.Contains(e.Message, "larger than 1024 bytes") {
				t.Errorf("got reason %v message %q; want %v and a size message", e.Reason, e.Message, tt.reason)
			}
		})
	}
	t.Run("exactly the limit is fine", func(t *testing.T) {
		t.Parallel()
		body := `{"amountCharged":"0.01","pad":"` + strings.Repeat("x", 1024-33) + `"}`
		if len(body) != 1024 {
			t.Fatalf("fixture is %d bytes", len(body))
		}
		api := newFakeAPI(t, reply(200, body))
		c := newTestClient(t, api.URL, func(cfg *Config) { cfg.MaxResponseBytes = 1024 })
		if _, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01")); err != nil {
			t.Fatalf("Charge: %v", err)
		}
	})
}

func TestConcurrentCharges(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, reply(200, `{"amountCharged":"0.01","remainingBalance":"1"}`))
	c := newTestClient(t, api.URL, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Charge(context.Background(), testToken, kyapay.MustParseAmount("0.01"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Charge: %v", err)
		}
	}
	if n := api.hits.Load(); n != 64 {
		t.Errorf("server got %d requests; want 64", n)
	}
}

func TestCloseIdleConnections(t *testing.T) {
	var closed int
	tr := &closeCounter{RoundTripper: http.DefaultTransport, closed: &closed}
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", APIKey: "k", HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	if closed != 1 {
		t.Errorf("transport's CloseIdleConnections called %d times; want 1", closed)
	}
}

type closeCounter struct {
	http.RoundTripper
	closed *int
}

func (c *closeCounter) CloseIdleConnections() { *c.closed++ }
