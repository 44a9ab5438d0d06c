package kyapaycaddy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// A Caddyfile that sells an unchanged upstream API: /quote costs 0.01 USD
// per request, and the upstream learns who paid from the Kyapay-* headers.
// The fake issuer from kyapaytest stands in for Skyfire (in production the
// issuer and api_url lines are left out).
func Example() {
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-1"))
	defer iss.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "quote for %s, paid %s", r.Header.Get("Kyapay-Subject"), r.Header.Get("Kyapay-Charged"))
	}))
	defer upstream.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()

	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	log {
		output discard
	}
	kyapay {
		issuer    %s
		api_url   %s
		seller_id seller-1
		api_key   {env.KYAPAYCADDY_TEST_API_KEY}
	}
}

http://%s {
	kyapay /quote 0.01
	reverse_proxy %s
}`, iss.Issuer(), iss.APIBaseURL(), addr, strings.TrimPrefix(upstream.URL, "http://"))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		panic(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		panic(err)
	}
	defer caddy.Stop()

	for _, token := range []string{"", iss.Mint(kyapay.TypePay, kyapaytest.Subject("agent-42"))} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/quote", nil)
		if token != "" {
			req.Header.Set("skyfire-pay-id", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, firstSentence(string(body)))
	}
	fmt.Println("charges:", iss.ChargeCount())
	// Output:
	// 402 ERROR: Missing pay token in the skyfire-pay-id header.
	// 200 quote for agent-42, paid 0.01
	// charges: 1
}

// firstSentence shortens the long refusal texts.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
