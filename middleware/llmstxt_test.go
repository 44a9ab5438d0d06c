package middleware

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
)

func testServiceInfo() ServiceInfo {
	return ServiceInfo{
		Name:        "Weather API",
		Description: "Forecasts for agents.\nUpdated hourly.",
		SellerID:    "5f0c6b1e-0000-4000-8000-000000000001",
		ServiceID:   "9a2d7c44-0000-4000-8000-000000000002",
		Environment: kyapay.EnvProduction,
		Routes: []RouteInfo{
			{Method: "get", Path: "/v1/forecast", Description: "Seven-day\nforecast.", Requirement: Pay(FixedPrice("0.01"))},
			{Method: "POST", Path: "/v1/report", Description: "Custom report.", Requirement: Requirement{
				Types: kyapay.TypeKYAPay, Price: PriceFunc(func(*http.Request) (kyapay.Amount, error) { return kyapay.MustParseAmount("1"), nil }),
				Timing: ChargeAfter, IdentityFields: []string{"email"},
			}},
			{Method: "GET", Path: "/v1/alerts", Requirement: Pay(ServicePrice())},
			{Path: "/v1/whoami", Requirement: Identity("email", "given_name")},
			{Method: "GET", Path: "/v1/ping", Requirement: AnyToken()},
		},
	}
}

func TestLLMsTxtContent(t *testing.T) {
	t.Parallel()
	h, err := LLMsTxt(testServiceInfo())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/llms.txt", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"# Weather API\n\n> Forecasts for agents.\n> Updated hourly.\n",
		"`skyfire-pay-id: <your KYAPay token>`",
		"- `GET /v1/forecast`: Seven-day forecast.\n  - Accepted tokens: `pay` or `kya-pay`.\n  - Price: 0.01 USD per request.\n  - Charged before the request is processed.\n",
		"- `POST /v1/report`: Custom report.\n  - Accepted tokens: `kya-pay`.\n  - Price: price varies per request.\n  - Required identity fields: email.\n  - Charged after the request succeeds",
		"- `GET /v1/alerts`\n  - Accepted tokens: `pay` or `kya-pay`.\n  - Price: the service's pay-per-use price set on Skyfire.\n",
		"- `/v1/whoami`\n  - Accepted tokens: `kya` or `kya-pay`.\n  - Price: free with a valid token.\n  - Required identity fields: email, given_name.\n",
		"- `GET /v1/ping`\n  - Accepted tokens: `kya`, `pay` or `kya-pay`.\n  - Price: free with a valid token.\n\n",
		"https://app.skyfire.xyz",
		"https://docs.skyfire.xyz/reference/create-token",
		"`9a2d7c44-0000-4000-8000-000000000002`",
		"`5f0c6b1e-0000-4000-8000-000000000001`",
		"HTTP 402",
		"    " + seedMissing + "\n",
		"    " + seedDepleted + "\n",
		"`charge_unknown` (HTTP 502): the charge may have gone through. Do not pay again",
		"Retry-After",
		"structuredContent",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("llms.txt lacks %q\n---\n%s", want, body)
		}
	}
	if strings.Contains(body, "Charged before the request is processed.\n  - Accepted") {
		t.Error("free route has a charge timing")
	}
}

func TestLLMsTxtOptions(t *testing.T) {
	t.Parallel()
	info := ServiceInfo{
		Name: "Sandbox", Header: "kyapay-token", Environment: kyapay.EnvSandbox, Policy: PolicyStatusCodes,
		CreateTokenURL: "https://example.test/tokens",
		Routes:         []RouteInfo{{Method: "GET", Path: "/a", Requirement: KYAPay(FixedPrice("0.25"))}},
	}
	h, err := LLMsTxt(info)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/llms.txt", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"`kyapay-token: <your KYAPay token>`",
		"https://app-sandbox.skyfire.xyz",
		"https://example.test/tokens",
		"Price: 0.25 USD per request",
		"HTTP 403", "HTTP 401",
		"Missing KYA-Pay token in the kyapay-token header.",
		"The balance on the given 'kya-pay' token is not enough. Please create and send a new kya-pay token. The required amount is 0.25 USD.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("llms.txt lacks %q\n---\n%s", want, body)
		}
	}
}

func TestLLMsTxtInvalid(t *testing.T) {
	t.Parallel()
	ok := RouteInfo{Method: "GET", Path: "/x", Requirement: AnyToken()}
	tests := []struct {
		name string
		info ServiceInfo
	}{
		{"no name", ServiceInfo{Routes: []RouteInfo{ok}}},
		{"bad price", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x", Requirement: Pay(FixedPrice("abc"))}}}},
		{"zero price", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x", Requirement: Pay(FixedPrice("0"))}}}},
		{"nil price func", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x", Requirement: Pay(PriceFunc(nil))}}}},
		{"no type left", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x", Requirement: Requirement{Types: kyapay.TypeKYA, Price: FixedPrice("0.01")}}}}},
		{"unknown field", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x", Requirement: Identity("shoe_size")}}}},
		{"unknown format", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x", Requirement: Requirement{Format: 9}}}}},
		{"no path", ServiceInfo{Name: "s", Routes: []RouteInfo{{Method: "GET", Requirement: AnyToken()}}}},
		{"newline path", ServiceInfo{Name: "s", Routes: []RouteInfo{{Path: "/x\n# injected", Requirement: AnyToken()}}}},
		{"newline name", ServiceInfo{Name: "s\n# t", Routes: []RouteInfo{ok}}},
		{"bad env", ServiceInfo{Name: "s", Environment: "staging", Routes: []RouteInfo{ok}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := LLMsTxt(tt.info)
			if err == nil || h != nil {
				t.Errorf("LLMsTxt = %v, %v; want an error", h, err)
			}
		})
	}
}

func TestLLMsTxtHTTP(t *testing.T) {
	t.Parallel()
	h, err := LLMsTxt(testServiceInfo())
	if err != nil {
		t.Fatal(err)
	}
	get := httptest.NewRecorder()
	h.ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/llms.txt", nil))

	tests := []struct {
		name       string
		method     string
		ifNone     string
		wantStatus int
		wantBody   bool
	}{
		{"GET", http.MethodGet, "", 200, true},
		{"HEAD", http.MethodHead, "", 200, false},
		{"POST", http.MethodPost, "", 405, false},
		{"DELETE", http.MethodDelete, "", 405, false},
		{"OPTIONS", http.MethodOptions, "", 405, false},
		{"conditional", http.MethodGet, get.Header().Get("ETag"), 304, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, "/llms.txt", nil)
			if tt.ifNone != "" {
				req.Header.Set("If-None-Match", tt.ifNone)
			}
			// A real server, so HEAD bodies are dropped as in production.
			srv := httptest.NewServer(h)
			defer srv.Close()
			req2, _ := http.NewRequest(tt.method, srv.URL+"/llms.txt", nil)
			req2.Header = req.Header
			resp, err := srv.Client().Do(req2)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d; want %d", resp.StatusCode, tt.wantStatus)
			}
			switch tt.wantStatus {
			case 200:
				if got := resp.Header.Get("Content-Type"); got != "text/markdown; charset=utf-8" {
					t.Errorf("Content-Type = %q", got)
				}
				if got := resp.Header.Get("Cache-Control"); got != "public, max-age=300" {
					t.Errorf("Cache-Control = %q", got)
				}
				if resp.ContentLength != int64(get.Body.Len()) {
					t.Errorf("Content-Length = %d; want %d", resp.ContentLength, get.Body.Len())
				}
				if tt.wantBody && string(body) != get.Body.String() {
					t.Errorf("body differs from the first GET")
				}
				if !tt.wantBody && len(body) != 0 {
					t.Errorf("HEAD returned %d body bytes", len(body))
				}
			case 405:
				if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q", got)
				}
			}
		})
	}
}

func TestLLMsTxtOmitsWhatDoesNotApply(t *testing.T) {
	t.Parallel()
	h, err := LLMsTxt(ServiceInfo{Name: "Free", Routes: []RouteInfo{
		{Method: "GET", Path: "/a", Requirement: Requirement{Types: kyapay.TypeKYA, Format: FormatText}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/llms.txt", nil))
	body := rec.Body.String()
	for _, absent := range []string{"Accept: application/json", "until its balance runs out", "Charged", "is depleted"} {
		if strings.Contains(body, absent) {
			t.Errorf("llms.txt for a free text-only service mentions %q\n---\n%s", absent, body)
		}
	}
	if !strings.Contains(body, "and create a kya token - ") {
		t.Errorf("example refusal should list the accepted type\n---\n%s", body)
	}
}
