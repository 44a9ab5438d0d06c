package kyapaycaddy_test

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
	"github.com/kyapay/kyapay-go/middleware/kyapaycaddy"
)

// A paid route behind reverse_proxy: the token is charged once, the
// upstream gets the verified identity and never the token.
func TestPaidBefore(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay /paid/* 0.01
	reverse_proxy {up}`)

	tok := e.iss.Mint(kyapay.TypeKYAPay, kyapaytest.Subject("agent-7"), kyapaytest.Email("ada@example.com"))
	res := e.get(t, "/paid/quote", tok)
	if res.status != http.StatusOK || res.body != "ok /paid/quote" {
		t.Fatalf("got %d %q; want 200 from the upstream", res.status, res.body)
	}
	if got := chargedAmounts(e.iss); !slices.Equal(got, []string{"0.01"}) {
		t.Errorf("charges = %v; want [0.01]", got)
	}
	h := e.upstream.last(t).header
	want := map[string]string{
		kyapaycaddy.HeaderSubject:   "agent-7",
		kyapaycaddy.HeaderTokenType: "kya-pay",
		kyapaycaddy.HeaderTokenID:   kyapaytest.TokenID(tok),
		kyapaycaddy.HeaderEmail:     "ada@example.com",
		kyapaycaddy.HeaderCharged:   "0.01",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("upstream header %s = %q; want %q", k, got, v)
		}
	}
	if got := h.Get(kyapaycaddy.HeaderPrice); got != "" {
		t.Errorf("upstream header %s = %q on a charge-before route; want none", kyapaycaddy.HeaderPrice, got)
	}
	if got := h.Get(kyapay.HeaderName); got != "" {
		t.Errorf("upstream received the token header")
	}

	// A route the directive does not match is not gated.
	if res := e.get(t, "/free", ""); res.status != http.StatusOK {
		t.Errorf("unmatched path: got %d; want 200", res.status)
	}
	if n := e.iss.ChargeCount(); n != 1 {
		t.Errorf("charges = %d; want 1", n)
	}
}

// Refused requests are answered by the gate and never reach the upstream.
func TestRefused(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay /paid/* 0.01
	kyapay /me {
		identity email
	}
	reverse_proxy {up}`)

	cases := []struct {
		name, path, token string
		status            int
		code              kyapay.Code
	}{
		{"no token", "/paid/x", "", http.StatusPaymentRequired, kyapay.CodeTokenMissing},
		{"kya token on a paid route", "/paid/x", e.iss.Mint(kyapay.TypeKYA), http.StatusPaymentRequired, kyapay.CodePayRequired},
		{"other seller's token", "/paid/x", e.iss.Mint(kyapay.TypePay, kyapaytest.Audience("seller-2")), http.StatusPaymentRequired, kyapay.CodeAudienceMismatch},
		{"depleted", "/paid/x", e.iss.Mint(kyapay.TypePay, kyapaytest.Balance("0")), http.StatusPaymentRequired, kyapay.CodeTokenDepleted},
		{"identity without email", "/me", e.iss.Mint(kyapay.TypeKYA, kyapaytest.Human(map[string]any{"given_name": "Ada"})), http.StatusPaymentRequired, kyapay.CodeIdentityFieldsMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.upstream.requests())
			res := e.get(t, c.path, c.token)
			if res.status != c.status || res.header.Get(middleware.CodeHeader) != string(c.code) {
				t.Errorf("got %d %s=%q; want %d %q (body %q)", res.status, middleware.CodeHeader, res.header.Get(middleware.CodeHeader), c.status, c.code, res.body)
			}
			if n := len(e.upstream.requests()); n != before {
				t.Errorf("the upstream received a refused request")
			}
		})
	}
	if n := e.iss.ChargeCount(); n != 0 {
		t.Errorf("charges = %d; want 0", n)
	}
	// The refusal text is the gate's.
	res := e.get(t, "/paid/x", "")
	if !strings.HasPrefix(res.body, "ERROR: Missing pay token in the skyfire-pay-id header.") {
		t.Errorf("refusal body %q", res.body)
	}
}

// Client-sent headers in the identity namespace never reach the upstream,
// in any spelling, on gated and on free (open MCP) requests alike.
func TestStripsClientHeaders(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay /me {
		identity email
	}
	kyapay /mcp {
		mcp
	}
	reverse_proxy {up}`)

	forged := []string{
		"Kyapay-Subject", "evil",
		"kyapay-email", "evil@example.com",
		"KYAPAY-CHARGED", "100",
		"Kyapay-Price", "0",
		"Kyapay-Anything", "x",
		"Skyfire-Pay-Id", "", // filled below
	}
	tok := e.iss.Mint(kyapay.TypeKYA, kyapaytest.Subject("agent-1"), kyapaytest.Email("real@example.com"))
	res := e.get(t, "/me", tok, forged[:10]...)
	if res.status != http.StatusOK {
		t.Fatalf("got %d %q", res.status, res.body)
	}
	h := e.upstream.last(t).header
	if got := h.Values(kyapaycaddy.HeaderSubject); !slices.Equal(got, []string{"agent-1"}) {
		t.Errorf("Kyapay-Subject = %q; want only the verified one", got)
	}
	if got := h.Values(kyapaycaddy.HeaderEmail); !slices.Equal(got, []string{"real@example.com"}) {
		t.Errorf("Kyapay-Email = %q; want only the verified one", got)
	}
	for _, k := range []string{"Kyapay-Charged", "Kyapay-Price", "Kyapay-Anything"} {
		if v := h.Values(k); len(v) != 0 {
			t.Errorf("upstream received client-sent %s: %q", k, v)
		}
	}

	// An MCP request that passes without a token is cleaned too, and the
	// token it carries is not passed on.
	res = e.do(t, http.MethodPost, "/mcp", tok, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`), forged[:10]...)
	if res.status != http.StatusOK {
		t.Fatalf("tools/list: got %d %q", res.status, res.body)
	}
	h = e.upstream.last(t).header
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "kyapay") || strings.EqualFold(k, kyapay.HeaderName) {
			t.Errorf("upstream received %s on an open request", k)
		}
	}
}

// The namespace is matched in every spelling an upstream might read as the
// same name (CGI-style upstreams map '-', '_' and '.' alike).
func TestStripsUnderscoreSpellings(t *testing.T) {
	e := newEnv(t)
	// Caddy drops header names with '_' or '.' unless told to expect them:
	// let these through to show the handler removes them itself.
	e.global = `servers {
		expected_underscore_headers Kyapay_Subject
		expected_dot_headers Kyapay.Email
	}`
	e.start(t, `kyapay {
		identity email
	}
	reverse_proxy {up}`)
	tok := e.iss.Mint(kyapay.TypeKYA, kyapaytest.Subject("agent-1"), kyapaytest.Email("real@example.com"))
	res := e.get(t, "/", tok, "Kyapay_Subject", "evil", "Kyapay.Email", "evil@example.com")
	if res.status != http.StatusOK {
		t.Fatalf("got %d %q", res.status, res.body)
	}
	h := e.upstream.last(t).header
	for k := range h {
		if strings.ContainsAny(k, "_.") {
			t.Errorf("upstream received %s", k)
		}
	}
	if got := h.Get(kyapaycaddy.HeaderSubject); got != "agent-1" {
		t.Errorf("Kyapay-Subject = %q", got)
	}
}

// Charge-after: the upstream sees the price; a success is charged once; an
// upstream error status, a response without content, a response cut short
// and an upstream that cannot be reached (reverse_proxy's 502 error) are
// not charged.
func TestChargeAfter(t *testing.T) {
	e := newEnv(t)
	down := freeAddr(t)
	e.start(t, `kyapay /after/* {
		price 0.02
		timing after
	}
	kyapay /down/* {
		price 0.02
		timing after
	}
	kyapay /downbefore/* 0.02
	handle /down/* {
		reverse_proxy `+down+`
	}
	handle /downbefore/* {
		reverse_proxy `+down+`
	}
	handle {
		reverse_proxy {up}
	}`)

	tok := e.iss.Mint(kyapay.TypePay)
	res := e.get(t, "/after/ok", tok)
	if res.status != http.StatusOK || res.body != "ok /after/ok" {
		t.Fatalf("success: got %d %q", res.status, res.body)
	}
	h := e.upstream.last(t).header
	if got := h.Get(kyapaycaddy.HeaderPrice); got != "0.02" {
		t.Errorf("Kyapay-Price = %q; want 0.02", got)
	}
	if got := h.Get(kyapaycaddy.HeaderCharged); got != "" {
		t.Errorf("Kyapay-Charged = %q before the charge; want none", got)
	}
	if got := chargedAmounts(e.iss); !slices.Equal(got, []string{"0.02"}) {
		t.Fatalf("charges = %v; want [0.02]", got)
	}

	for _, path := range []string{"/after/fail", "/after/nocontent", "/after/cut"} {
		res = e.get(t, path, tok)
		if res.status == http.StatusOK || strings.Contains(res.body, "partial") {
			t.Errorf("%s: got %d %q", path, res.status, res.body)
		}
	}
	if res := e.do(t, http.MethodHead, "/after/ok", tok, nil); res.status != http.StatusOK {
		t.Errorf("HEAD: got %d", res.status)
	}
	res = e.get(t, "/down/x", tok)
	if res.status != http.StatusBadGateway {
		t.Errorf("upstream down: got %d %q; want 502", res.status, res.body)
	}
	if n := e.iss.ChargeCount(); n != 1 {
		t.Errorf("charges = %d after failures, HEAD and a down upstream; want 1", n)
	}

	// Charging before, the charge is made before the upstream is tried.
	res = e.get(t, "/downbefore/x", tok)
	if res.status != http.StatusBadGateway {
		t.Errorf("upstream down, charge before: got %d", res.status)
	}
	if n := e.iss.ChargeCount(); n != 2 {
		t.Errorf("charges = %d; want 2 (charge-before charges before the upstream fails)", n)
	}
}

// Site-wide kyapay guards handle blocks: the directive is ordered before
// them, so they cannot skip it.
func TestGuardsHandleBlocks(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay 0.01
	handle /api/* {
		reverse_proxy {up}
	}
	handle {
		respond "static" 200
	}`)
	for _, path := range []string{"/api/x", "/other"} {
		if res := e.get(t, path, ""); res.status != http.StatusPaymentRequired {
			t.Errorf("%s without a token: got %d %q; want 402", path, res.status, res.body)
		}
	}
	if res := e.get(t, "/other", e.iss.Mint(kyapay.TypePay)); res.status != http.StatusOK || res.body != "static" {
		t.Errorf("/other paid: got %d %q", res.status, res.body)
	}
	if len(e.upstream.requests()) != 0 {
		t.Errorf("the upstream was reached")
	}
}

// Streams go through as they come on charge-before routes; on
// charge-after routes they are refused, not delivered and not charged.
func TestStreams(t *testing.T) {
	e := newEnv(t)
	e.upstream.sse = make(chan struct{})
	e.start(t, `kyapay /before/* 0.01
	kyapay /after/* {
		price 0.01
		timing after
	}
	reverse_proxy {up}`)

	// Before: the first event arrives while the upstream still waits to
	// send the second one, so nothing held the stream back.
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+"/before/sse", nil)
	req.Header.Set(kyapay.HeaderName, e.iss.Mint(kyapay.TypePay))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(e.upstream.sse)
	rest, _ := readAll(br)
	resp.Body.Close()
	if !strings.Contains(rest, "data: two") {
		t.Errorf("rest of the stream %q", rest)
	}
	if n := e.iss.ChargeCount(); n != 1 {
		t.Fatalf("charges = %d; want 1", n)
	}

	res := e.get(t, "/after/sse", e.iss.Mint(kyapay.TypePay))
	if res.status != http.StatusBadGateway || strings.Contains(res.body, "data:") {
		t.Errorf("stream on a charge-after route: got %d %q; want 502 without the stream", res.status, res.body)
	}
	res = e.get(t, "/after/ws", e.iss.Mint(kyapay.TypePay), "Connection", "Upgrade", "Upgrade", "websocket")
	if res.status != http.StatusBadGateway {
		t.Errorf("upgrade on a charge-after route: got %d %q; want 502", res.status, res.body)
	}
	if n := e.iss.ChargeCount(); n != 1 {
		t.Errorf("charges = %d; want 1 (refused streams are not charged)", n)
	}
}

// A response larger than max_buffer on a charge-after route is not
// delivered and not charged.
func TestChargeAfterTooLarge(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay {
		price 0.01
		timing after
		max_buffer 4
	}
	reverse_proxy {up}`)
	res := e.get(t, "/big", e.iss.Mint(kyapay.TypePay))
	if res.status != http.StatusInternalServerError || strings.Contains(res.body, "ok") {
		t.Errorf("got %d %q; want 500 without the content", res.status, res.body)
	}
	if n := e.iss.ChargeCount(); n != 0 {
		t.Errorf("charges = %d; want 0", n)
	}
}

func readAll(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	_, err := br.WriteTo(&sb)
	return sb.String(), err
}

// Every kyapay directive that matches a request applies, with the same
// token: a site-wide identity requirement and a priced route inside a
// handle block both hold, and the upstream still never sees the token.
func TestNestedDirectives(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay {
		identity email
	}
	handle /report {
		kyapay 0.05
		reverse_proxy {up}
	}
	handle {
		reverse_proxy {up}
	}`)

	tok := e.iss.Mint(kyapay.TypeKYAPay, kyapaytest.Email("ada@example.com"))
	if res := e.get(t, "/report", tok); res.status != http.StatusOK {
		t.Fatalf("kya-pay token with email: got %d %q", res.status, res.body)
	}
	h := e.upstream.last(t).header
	if h.Get(kyapay.HeaderName) != "" || h.Get(kyapaycaddy.HeaderCharged) != "0.05" || h.Get(kyapaycaddy.HeaderEmail) != "ada@example.com" {
		t.Errorf("upstream headers %v", h)
	}
	if res := e.get(t, "/report", e.iss.Mint(kyapay.TypePay)); res.status != http.StatusPaymentRequired {
		t.Errorf("pay token without identity: got %d; want 402 from the site-wide requirement", res.status)
	}
	if res := e.get(t, "/other", tok); res.status != http.StatusOK {
		t.Errorf("/other: got %d", res.status)
	}
	if got := chargedAmounts(e.iss); !slices.Equal(got, []string{"0.05"}) {
		t.Errorf("charges = %v; want [0.05]", got)
	}
}

// The verified identity is available to the rest of the route as
// placeholders.
func TestPlaceholders(t *testing.T) {
	e := newEnv(t)
	e.start(t, `kyapay /before 0.01
	kyapay /after {
		price 0.02
		timing after
	}
	respond "{kyapay.subject} {kyapay.token_type} {kyapay.email} charged={kyapay.charged} price={kyapay.price}" 200`)
	tok := e.iss.Mint(kyapay.TypeKYAPay, kyapaytest.Subject("agent-7"), kyapaytest.Email("ada@example.com"))
	if res := e.get(t, "/before", tok); res.body != "agent-7 kya-pay ada@example.com charged=0.01 price=" {
		t.Errorf("before: %q", res.body)
	}
	if res := e.get(t, "/after", tok); res.body != "agent-7 kya-pay ada@example.com charged= price=0.02" {
		t.Errorf("after: %q", res.body)
	}
}
