// Command demo walks a buyer agent through a session with a seller API
// protected by kyapay-go, entirely in-process: a fake Skyfire issuer (JWKS
// and charge API) and the seller run on loopback, and every request and
// response is printed. It exits 0 when every step behaved as expected.
//
//	go -C examples run ./demo    (from the repository root)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// seller builds the seller API: the part a real seller writes.
func seller(iss *kyapaytest.Issuer) (http.Handler, func(), error) {
	// 1. A verifier that trusts the issuer and fetches its keys (JWKS).
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:    []string{iss.Issuer()},
		JWKSURLs:   map[string]string{iss.Issuer(): iss.JWKSURL()}, // Skyfire: the default
		HTTPClient: iss.Client(),
		Audience:   kyapaytest.DefaultAudience, // your seller agent ID
		ServiceID:  kyapaytest.DefaultServiceID,
		Env:        kyapay.EnvProduction,
	})
	if err != nil {
		return nil, nil, err
	}
	// 2. A charge client for Skyfire's seller API.
	cc, err := charge.New(charge.Config{
		BaseURL:    iss.APIBaseURL(), // Skyfire: charge.ProductionBaseURL
		APIKey:     charge.APIKey(iss.APIKey()),
		HTTPClient: iss.Client(),
	})
	if err != nil {
		v.Close()
		return nil, nil, err
	}
	// 3. One middleware, one call per route.
	m, err := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	if err != nil {
		v.Close()
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /whoami", m.MustWrap(http.HandlerFunc(whoami), middleware.Identity("email")))
	mux.Handle("GET /quote", m.MustWrap(http.HandlerFunc(quote), middleware.Pay(middleware.FixedPrice("0.01"))))
	return mux, func() { v.Close() }, nil
}

func whoami(w http.ResponseWriter, r *http.Request) {
	c, _ := kyapay.FromContext(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"agent": c.Subject, "email": c.Human.Email, "verified": c.Human.Verified})
}

func quote(w http.ResponseWriter, r *http.Request) {
	rc, _ := middleware.ReceiptFromContext(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"quote": "The best time to plant a tree was 20 years ago.",
		"charged": rc.AmountCharged, "remainingBalance": rc.RemainingBalance})
}

// step is one request of the buyer's session and what it must produce.
type step struct {
	title      string
	path       string
	token      string
	accept     string
	wantStatus int
	wantText   string
}

func run(out io.Writer) error {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	h, closeSeller, err := seller(iss)
	if err != nil {
		return err
	}
	defer closeSeller()
	srv := httptest.NewServer(h)
	defer srv.Close()

	kya := iss.Mint(kyapay.TypeKYA, kyapaytest.Email("ada@example.com"))
	pay := iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.03")) // three quotes' worth
	fmt.Fprintf(out, "fake Skyfire issuer at %s, seller API at %s\n", iss.URL(), srv.URL)
	fmt.Fprintf(out, "minted a kya token and a pay token worth 0.03 USD; each /quote costs 0.01 USD\n")

	steps := []step{
		{"no token: the recommended 402, as plain text", "/quote", "", "", 402, "Missing pay token"},
		{"no token, caller prefers JSON: MCP-style error result", "/quote", "", "application/json", 402, `"isError":true`},
		{"kya token: the seller learns who the buyer is", "/whoami", kya, "", 200, "ada@example.com"},
		{"kya token on a paid route: pay token required", "/quote", kya, "", 402, "The required amount is 0.01 USD"},
		{"pay token: charged 0.01", "/quote", pay, "", 200, `"remainingBalance":"0.02"`},
		{"pay token again: the balance goes down", "/quote", pay, "", 200, `"remainingBalance":"0.01"`},
		{"and again", "/quote", pay, "", 200, `"remainingBalance":"0"`},
		{"depleted token: refused with the depleted 402", "/quote", pay, "", 402, "depleted"},
	}
	for i, s := range steps {
		req, err := http.NewRequestWithContext(context.Background(), "GET", srv.URL+s.path, nil)
		if err != nil {
			return err
		}
		if s.token != "" {
			req.Header.Set(kyapay.HeaderName, s.token)
		}
		if s.accept != "" {
			req.Header.Set("Accept", s.accept)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%d. %s\n", i+1, s.title)
		fmt.Fprintf(out, "   > GET %s%s\n", s.path, describeHeaders(s))
		fmt.Fprintf(out, "   < %s (%s)\n", resp.Status, resp.Header.Get("Content-Type"))
		fmt.Fprintf(out, "   < %s\n", strings.TrimSpace(string(body)))
		if resp.StatusCode != s.wantStatus || !strings.Contains(string(body), s.wantText) {
			return fmt.Errorf("step %d: got %d, want %d with %q", i+1, resp.StatusCode, s.wantStatus, s.wantText)
		}
	}
	fmt.Fprintf(out, "\nledger at the fake issuer: %d charges\n", iss.ChargeCount())
	for _, c := range iss.Charges() {
		fmt.Fprintf(out, "   %s  %s USD  token %s\n", c.ChargeID, c.Amount, c.TokenID)
	}
	if iss.ChargeCount() != 3 {
		return fmt.Errorf("ledger has %d charges; want 3", iss.ChargeCount())
	}
	fmt.Fprintln(out, "\ndemo finished: every step behaved as expected")
	return nil
}

func describeHeaders(s step) string {
	var parts []string
	if s.token != "" {
		parts = append(parts, kyapay.HeaderName+": "+s.token[:16]+"…")
	}
	if s.accept != "" {
		parts = append(parts, "Accept: "+s.accept)
	}
	if len(parts) == 0 {
		return ""
	}
	return "  [" + strings.Join(parts, ", ") + "]"
}
