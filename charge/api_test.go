package charge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

func TestIntrospect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    Introspection
		wantErr Outcome
		isErr   bool
		raw     string // the expected Raw; "" means the body as is
	}{
		{"valid with balance", `{"isValid":true,"validationError":null,"remainingBalance":"4.990000"}`,
			Introspection{IsValid: true, RemainingBalance: kyapay.MustParseAmount("4.99"), HasRemainingBalance: true}, 0, false, ""},
		{"valid without balance", `{"isValid":true}`, Introspection{IsValid: true}, 0, false, ""},
		{"invalid", `{"isValid":false,"validationError":"Token expired"}`,
			Introspection{ValidationError: "Token expired"}, 0, false, ""},
		{"invalid with structured error", `{"isValid":false,"validationError":{"code":"X"}}`,
			Introspection{ValidationError: `{"code":"X"}`}, 0, false, ""},
		{"invalid echoing the token", `{"isValid":false,"validationError":"bad token ` + testToken + `"}`,
			Introspection{ValidationError: "bad token [REDACTED]"}, 0, false,
			`{"isValid":false,"validationError":"bad token [REDACTED]"}`},
		{"missing isValid", `{"remainingBalance":"1"}`, Introspection{}, OutcomeUnknown, true, ""},
		{"isValid not bool", `{"isValid":"yes"}`, Introspection{}, OutcomeUnknown, true, ""},
		{"garbage", `<html>`, Introspection{}, OutcomeUnknown, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, reply(200, tt.body))
			c := newTestClient(t, api.URL, nil)
			got, err := c.Introspect(context.Background(), testToken)
			req := api.last(t)
			if req.Method != http.MethodPost || req.Path != "/api/v1/tokens/introspect" {
				t.Errorf("got %s %s; want POST /api/v1/tokens/introspect", req.Method, req.Path)
			}
			if want := `{"token":"` + testToken + `"}`; string(req.Body) != want {
				t.Errorf("got body %s; want %s", req.Body, want)
			}
			if req.Header.Get("skyfire-api-key") != testKey {
				t.Error("API key header not sent")
			}
			if tt.isErr {
				e := asError(t, err)
				wantOutcome(t, err, tt.wantErr)
				if e.Op != "introspect" || e.Reason != ReasonBadResponse {
					t.Errorf("got op %q reason %v; want introspect bad_response", e.Op, e.Reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Introspect: %v", err)
			}
			wantRaw := tt.raw
			if wantRaw == "" {
				wantRaw = tt.body
			}
			if string(got.Raw) != wantRaw {
				t.Errorf("got Raw %s; want %s", got.Raw, wantRaw)
			}
			got.Raw = nil
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
	t.Run("401", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t, reply(401, `{"code":"NOT_AUTHORIZED","message":"wrong key"}`))
		c := newTestClient(t, api.URL, nil)
		_, err := c.Introspect(context.Background(), testToken)
		e := asError(t, err)
		wantOutcome(t, err, OutcomeDeclined)
		if e.Op != "introspect" || e.Reason != ReasonAPIKeyRejected {
			t.Errorf("got op %q reason %v; want introspect api_key_rejected", e.Op, e.Reason)
		}
	})
}

func TestTokenChargesRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		jti        string
		cursor     string
		size       int
		wantURI    string
		wantJTI    string
		wantCursor string
	}{
		{"uuid first page", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "", 0,
			"/api/v1/tokens/3fa85f64-5717-4562-b3fc-2c963f66afa6/charges", "3fa85f64-5717-4562-b3fc-2c963f66afa6", ""},
		{"size only", "abc", "", 25, "/api/v1/tokens/abc/charges?size=25", "abc", ""},
		{"cursor with specials", "abc", "c/1+2=3&x y", 100,
			"/api/v1/tokens/abc/charges?pageCursor=c%2F1%2B2%3D3%26x+y&size=100", "abc", "c/1+2=3&x y"},
		{"jti with slash query hash and space", "a/b?c#d e", "", 0,
			"/api/v1/tokens/a%2Fb%3Fc%23d%20e/charges", "a/b?c#d e", ""},
		{"jti with dots", "../admin", "", 0, "/api/v1/tokens/..%2Fadmin/charges", "../admin", ""},
		{"jti with percent", "50%off", "", 0, "/api/v1/tokens/50%25off/charges", "50%off", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, reply(200, `{"data":[]}`))
			c := newTestClient(t, api.URL, nil)
			p, err := c.TokenCharges(context.Background(), tt.jti, tt.cursor, tt.size)
			if err != nil {
				t.Fatalf("TokenCharges: %v", err)
			}
			if len(p.Charges) != 0 || p.NextPageCursor != "" {
				t.Errorf("got %+v; want an empty last page", p)
			}
			req := api.last(t)
			if req.Method != http.MethodGet || req.RequestURI != tt.wantURI {
				t.Errorf("got %s %s; want GET %s", req.Method, req.RequestURI, tt.wantURI)
			}
			if want := "/api/v1/tokens/" + tt.wantJTI + "/charges"; req.Path != want {
				t.Errorf("server decoded path %q; want %q", req.Path, want)
			}
			if got := req.Query["pageCursor"]; tt.wantCursor != "" && (len(got) != 1 || got[0] != tt.wantCursor) {
				t.Errorf("got pageCursor %q; want %q", got, tt.wantCursor)
			}
			if req.Header.Get("skyfire-api-key") != testKey || req.Header.Get("Content-Type") != "" {
				t.Errorf("got headers %v; want the API key and no Content-Type", req.Header)
			}
		})
	}
}

func TestTokenChargesDecode(t *testing.T) {
	t.Parallel()
	body := `{"data":[
		{"tokenId":"t1","chargeId":"c1","value":"0.01","chargedAt":"2025-08-01T12:00:00.123Z"},
		{"tokenId":"t1","chargeId":2,"value":"0.000001","chargedAt":null}
	],"nextPageCursor":"next"}`
	api := newFakeAPI(t, reply(200, body))
	c := newTestClient(t, api.URL, nil)
	p, err := c.TokenCharges(context.Background(), "t1", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []ChargeRecord{
		{TokenID: "t1", ChargeID: "c1", Amount: kyapay.MustParseAmount("0.01"),
			ChargedAt: time.Date(2025, 8, 1, 12, 0, 0, 123e6, time.UTC)},
		{TokenID: "t1", ChargeID: "2", Amount: kyapay.MustParseAmount("0.000001")},
	}
	if len(p.Charges) != len(want) || p.NextPageCursor != "next" {
		t.Fatalf("got %+v; want 2 charges and cursor next", p)
	}
	for i := range want {
		g, w := p.Charges[i], want[i]
		if g.TokenID != w.TokenID || g.ChargeID != w.ChargeID || g.Amount != w.Amount || !g.ChargedAt.Equal(w.ChargedAt) {
			t.Errorf("charge %d: got %+v; want %+v", i, g, w)
		}
	}

	for _, bad := range []string{
		`{"data":[{"tokenId":"t1"}]}`,
		`{"data":[{"value":"0.01","chargedAt":"yesterday"}]}`,
		`{"data":[{"value":0.1e1}]}`,
		`{"data":{}}`,
		`null`,
	} {
		api := newFakeAPI(t, reply(200, bad))
		c := newTestClient(t, api.URL, nil)
		_, err := c.TokenCharges(context.Background(), "t1", "", 0)
		e := asError(t, err)
		if e.Outcome != OutcomeUnknown || e.Reason != ReasonBadResponse || e.Op != "charges" {
			t.Errorf("%s: got %v; want charges unknown bad_response", bad, err)
		}
	}
}

// pagedAPI serves pages keyed by cursor: pages[""] is the first page.
func pagedAPI(t *testing.T, pages map[string]string) *fakeAPI {
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		body, ok := pages[r.URL.Query().Get("pageCursor")]
		if !ok {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"code":"NOT_FOUND","message":"no such cursor"}`))
			return
		}
		_, _ = w.Write([]byte(body))
	})
}

func page(next string, values ...string) string {
	recs := make([]string, len(values))
	for i, v := range values {
		recs[i] = `{"tokenId":"jti-1","chargeId":"` + v + `","value":"` + v + `"}`
	}
	s := `{"data":[` + strings.Join(recs, ",") + `]`
	if next != "" {
		s += `,"nextPageCursor":` + strconv.Quote(next)
	}
	return s + "}"
}

func TestAllTokenCharges(t *testing.T) {
	t.Parallel()
	amounts := func(rs []ChargeRecord) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Amount.String())
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name    string
		pages   map[string]string
		want    string
		wantErr bool
		reason  Reason
	}{
		{"single page", map[string]string{"": page("", "0.01", "0.02")}, "0.01,0.02", false, 0},
		{"three pages", map[string]string{
			"":   page("p2", "0.01"),
			"p2": page("p3", "0.02", "0.03"),
			"p3": page("", "0.04"),
		}, "0.01,0.02,0.03,0.04", false, 0},
		{"empty middle page", map[string]string{
			"":   page("p2", "0.01"),
			"p2": page("p3"),
			"p3": page("", "0.02"),
		}, "0.01,0.02", false, 0},
		{"cursor points to itself", map[string]string{
			"":  page("a", "0.01"),
			"a": page("a", "0.02"),
		}, "0.01,0.02", true, ReasonBadResponse},
		{"cursor loop of two", map[string]string{
			"":  page("a", "0.01"),
			"a": page("b", "0.02"),
			"b": page("a", "0.03"),
		}, "0.01,0.02,0.03", true, ReasonBadResponse},
		{"error mid-way", map[string]string{
			"": page("missing", "0.01"),
		}, "0.01", true, ReasonInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := pagedAPI(t, tt.pages)
			c := newTestClient(t, api.URL, nil)
			got, err := c.AllTokenCharges(context.Background(), "jti-1")
			if amounts(got) != tt.want {
				t.Errorf("got charges %s; want %s", amounts(got), tt.want)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v; want error %v", err, tt.wantErr)
			}
			if err != nil && ReasonOf(err) != tt.reason {
				t.Errorf("got reason %v; want %v (%v)", ReasonOf(err), tt.reason, err)
			}
			if size := api.last(t).Query["size"]; len(size) != 1 || size[0] != strconv.Itoa(allChargesPageSize) {
				t.Errorf("got size %v; want %d", size, allChargesPageSize)
			}
		})
	}
	t.Run("page bound", func(t *testing.T) {
		t.Parallel()
		// Every page points to a fresh cursor, forever.
		api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			n, _ := strconv.Atoi(r.URL.Query().Get("pageCursor"))
			_, _ = w.Write([]byte(page(strconv.Itoa(n+1), "0.01")))
		})
		c := newTestClient(t, api.URL, nil)
		got, err := c.AllTokenCharges(context.Background(), "jti-1")
		if err == nil || ReasonOf(err) != ReasonBadResponse {
			t.Fatalf("got %v; want a page-bound error", err)
		}
		if len(got) != allChargesMaxPages || api.hits.Load() != allChargesMaxPages {
			t.Errorf("got %d charges over %d requests; want %d", len(got), api.hits.Load(), allChargesMaxPages)
		}
	})
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"production", Config{BaseURL: ProductionBaseURL, APIKey: testKey}, ""},
		{"sandbox trailing slash", Config{BaseURL: SandboxBaseURL + "/", APIKey: testKey}, ""},
		{"path prefix", Config{BaseURL: "http://localhost:8080/skyfire/", APIKey: testKey}, ""},
		{"http loopback v4", Config{BaseURL: "http://127.0.0.1:8080", APIKey: testKey}, ""},
		{"http loopback 127/8", Config{BaseURL: "http://127.45.6.7", APIKey: testKey}, ""},
		{"http loopback v6", Config{BaseURL: "http://[::1]:9000/", APIKey: testKey}, ""},
		{"http loopback mapped", Config{BaseURL: "http://[::ffff:127.0.0.1]:9000", APIKey: testKey}, ""},
		{"http LOCALHOST", Config{BaseURL: "http://LOCALHOST:1", APIKey: testKey}, ""},
		{"http remote host", Config{BaseURL: "http://api.skyfire.xyz", APIKey: testKey}, "plain http:// to a host that is not loopback"},
		{"http remote ip", Config{BaseURL: "http://10.0.0.1:8080", APIKey: testKey}, "would travel unencrypted"},
		{"http unspecified", Config{BaseURL: "http://0.0.0.0:8080", APIKey: testKey}, "use https://"},
		{"http v6 remote", Config{BaseURL: "http://[2001:db8::1]", APIKey: testKey}, "not loopback"},
		{"http localhost lookalike", Config{BaseURL: "http://localhost.example.com", APIKey: testKey}, "not loopback"},
		{"http loopback-named host", Config{BaseURL: "http://127.0.0.1.nip.io", APIKey: testKey}, "not loopback"},
		{"HTTP remote upper case", Config{BaseURL: "HTTP://api.skyfire.xyz", APIKey: testKey}, "not loopback"},
		{"empty base", Config{APIKey: testKey}, "BaseURL is empty"},
		{"relative", Config{BaseURL: "/api", APIKey: testKey}, "absolute http or https"},
		{"ftp", Config{BaseURL: "ftp://api.skyfire.xyz", APIKey: testKey}, "absolute http or https"},
		{"no host", Config{BaseURL: "https://", APIKey: testKey}, "no host"},
		{"query", Config{BaseURL: "https://api.skyfire.xyz?x=1", APIKey: testKey}, "query or fragment"},
		{"empty query", Config{BaseURL: "https://api.skyfire.xyz?", APIKey: testKey}, "query or fragment"},
		{"fragment", Config{BaseURL: "https://api.skyfire.xyz#f", APIKey: testKey}, "query or fragment"},
		{"user info", Config{BaseURL: "https://user:s3cret@api.skyfire.xyz", APIKey: testKey}, "user info"},
		{"unparsable", Config{BaseURL: "https://user:s3cret@api.skyfire.xyz:port", APIKey: testKey}, "not a valid URL"},
		{"space", Config{BaseURL: "https://api.skyfire.xyz/a b", APIKey: testKey}, "spaces"},
		{"no key", Config{BaseURL: ProductionBaseURL}, "APIKey is empty"},
		{"key with newline", Config{BaseURL: ProductionBaseURL, APIKey: testKey + "\r\nX: y"}, "APIKey: charge: invalid API key: contains whitespace"},
		{"key with space", Config{BaseURL: ProductionBaseURL, APIKey: " " + testKey}, "invalid API key: contains whitespace"},
		{"key with inner space", Config{BaseURL: ProductionBaseURL, APIKey: "sk live"}, "invalid API key: contains whitespace"},
		{"key with tab", Config{BaseURL: ProductionBaseURL, APIKey: "sk\tlive"}, "invalid API key: contains whitespace"},
		{"key with NUL", Config{BaseURL: ProductionBaseURL, APIKey: "sk\x00live"}, "invalid API key: contains a control character"},
		{"key with DEL", Config{BaseURL: ProductionBaseURL, APIKey: "sk\x7flive"}, "invalid API key: contains a control character"},
		{"key non-ASCII", Config{BaseURL: ProductionBaseURL, APIKey: "sk_lïve"}, "invalid API key: contains a non-ASCII byte"},
		{"key too long", Config{BaseURL: ProductionBaseURL, APIKey: APIKey(strings.Repeat("k", 4097))}, "longer than 4096 bytes"},
		{"key and source", Config{BaseURL: ProductionBaseURL, APIKey: testKey, KeySource: func(context.Context) (APIKey, error) { return testKey, nil }}, "not both"},
		{"source fails", Config{BaseURL: ProductionBaseURL, KeySource: func(context.Context) (APIKey, error) { return "", errors.New("vault down") }}, "KeySource: vault down"},
		{"source gives bad key", Config{BaseURL: ProductionBaseURL, KeySource: func(context.Context) (APIKey, error) { return testKey + "\n", nil }}, "KeySource: charge: invalid API key: contains whitespace"},
		{"source ok", Config{BaseURL: ProductionBaseURL, KeySource: func(context.Context) (APIKey, error) { return testKey, nil }}, ""},
		{"bad user agent", Config{BaseURL: ProductionBaseURL, APIKey: testKey, UserAgent: "a\nb"}, "UserAgent"},
		{"negative timeout", Config{BaseURL: ProductionBaseURL, APIKey: testKey, Timeout: -1}, "Timeout"},
		{"negative max body", Config{BaseURL: ProductionBaseURL, APIKey: testKey, MaxResponseBytes: -1}, "MaxResponseBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, %v; want error containing %q", c, err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			for _, secret := range []string{testKey, "s3cret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("config error %q reveals a secret", err)
				}
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: ProductionBaseURL + "/", APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout != DefaultTimeout || c.maxBody != DefaultMaxResponseBytes || c.maxRetries != DefaultMaxRetries {
		t.Errorf("got timeout %v maxBody %d retries %d; want defaults", c.timeout, c.maxBody, c.maxRetries)
	}
	if c.chargeURL != "https://api.skyfire.xyz/api/v1/tokens/charge" {
		t.Errorf("got charge URL %q", c.chargeURL)
	}
	if c.backoff(1) != 50*time.Millisecond || c.backoff(2) != 100*time.Millisecond {
		t.Errorf("got default backoff %v, %v", c.backoff(1), c.backoff(2))
	}
	if c.secret().userAgent != DefaultUserAgent {
		t.Errorf("got user agent %q", c.secret().userAgent)
	}
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost < 16 {
		t.Errorf("got transport %T; want a tuned *http.Transport", c.hc.Transport)
	}
	if c.hc == http.DefaultClient || c.hc.Transport == http.DefaultTransport {
		t.Error("default client must be dedicated")
	}
	n, err := New(Config{BaseURL: ProductionBaseURL, APIKey: testKey, MaxRetries: -3})
	if err != nil || n.maxRetries != 0 {
		t.Errorf("negative MaxRetries gave %d, %v; want 0 retries", n.maxRetries, err)
	}
}
