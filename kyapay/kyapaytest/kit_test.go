package kyapaytest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	// Imported as chargeapi: this package's tests declare a func named charge.
	chargeapi "github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
	"github.com/kyapay/kyapay-go/middleware"
)

// A seller's test: start the fake issuer, build the seller from the
// issuer's ready configurations, mint a token, send a request, and read
// the ledger.
func Example_seller() {
	iss := kyapaytest.NewIssuer()
	defer iss.Close()

	// The seller under test, wired to the fake issuer in three lines.
	v, _ := kyapay.NewVerifier(iss.VerifierConfig())
	defer v.Close()
	cc, _ := chargeapi.New(iss.ChargeConfig())
	m, _ := middleware.New(middleware.Config{Verifier: v, Charger: cc})
	seller := m.MustWrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the report")
	}), middleware.Pay(middleware.FixedPrice("0.01")))

	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
	req := httptest.NewRequest(http.MethodGet, "/report", nil)
	req.Header.Set(kyapay.HeaderName, tok)
	rec := httptest.NewRecorder()
	seller.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	balance, _ := iss.Balance(kyapaytest.TokenID(tok))
	fmt.Println("charges:", iss.ChargeCount(), "balance:", balance)
	// Output:
	// 200 the report
	// charges: 1 balance: 0.99
}

// TestVerifierConfigAcceptsDefaultTokens: a verifier built from
// VerifierConfig accepts every default token type in both generations, and
// only tokens for this issuer's seller.
func TestVerifierConfigAcceptsDefaultTokens(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	iss := kyapaytest.NewIssuer(kyapaytest.WithAudience("seller-7"), kyapaytest.WithServiceID("service-7"),
		kyapaytest.WithEnv(kyapay.EnvSandbox), kyapaytest.WithClock(func() time.Time { return now }))
	defer iss.Close()
	cfg := iss.VerifierConfig()
	if cfg.Audience != "seller-7" || cfg.ServiceID != "service-7" || cfg.Env != kyapay.EnvSandbox || !cfg.Clock().Equal(now) {
		t.Fatalf("VerifierConfig does not follow the issuer's options: %+v", cfg)
	}
	v, err := kyapay.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, typ := range []kyapay.TokenType{kyapay.TypeKYA, kyapay.TypePay, kyapay.TypeKYAPay} {
		for _, opts := range [][]kyapaytest.TokenOption{nil, {kyapaytest.Legacy()}, {kyapaytest.LegacySkyfireEmail()}} {
			c, err := v.Verify(context.Background(), iss.Mint(typ, opts...))
			if err != nil {
				t.Fatalf("%v %d options: %v", typ, len(opts), err)
			}
			if typ.HasIdentity() && (c.Human == nil || c.Human.Email != kyapaytest.DefaultEmail || c.Agent == nil || c.Agent.Name != kyapaytest.DefaultAgentName) {
				t.Errorf("%v %d options: identity %+v, agent %+v", typ, len(opts), c.Human, c.Agent)
			}
		}
	}
	// Time is the issuer's: a token that expired by the issuer's clock is
	// refused, whatever the wall clock says.
	if _, err := v.Verify(context.Background(), iss.Mint(kyapay.TypeKYA, kyapaytest.ExpiresIn(-time.Hour))); !errors.Is(err, kyapay.ErrTokenExpired) {
		t.Errorf("expired token: err = %v; want token_expired", err)
	}
	if _, err := v.Verify(context.Background(), iss.Mint(kyapay.TypeKYA, kyapaytest.Audience("another-seller"))); !errors.Is(err, kyapay.ErrAudienceMismatch) {
		t.Errorf("token for another seller: err = %v; want audience_mismatch", err)
	}
}

// TestChargeConfigCharges: a charge client from ChargeConfig charges
// through the fake API.
func TestChargeConfigCharges(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	cc, err := chargeapi.New(iss.ChargeConfig())
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.05"))
	if _, err := cc.Charge(context.Background(), tok, kyapay.MustParseAmount("0.02")); err != nil {
		t.Fatal(err)
	}
	if b, _ := iss.Balance(kyapaytest.TokenID(tok)); b != kyapay.MustParseAmount("0.03") {
		t.Errorf("balance = %v; want 0.03", b)
	}
}

// TestTrailingSlashIssuer: WithIssuerTrailingSlash mints the 2025 issuer
// spelling; a verifier trusting the preset without the slash accepts it.
func TestTrailingSlashIssuer(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(kyapaytest.WithIssuer(kyapay.ProductionIssuer), kyapaytest.WithIssuerTrailingSlash())
	defer iss.Close()
	if iss.Issuer() != kyapay.ProductionIssuer+"/" {
		t.Fatalf("Issuer() = %q; want %q", iss.Issuer(), kyapay.ProductionIssuer+"/")
	}
	_, claims, _ := kyapaytest.Decode(iss.Mint(kyapay.TypeKYA))
	if claims["iss"] != kyapay.ProductionIssuer+"/" {
		t.Fatalf("iss = %v", claims["iss"])
	}
	cfg := iss.VerifierConfig()
	cfg.Issuers = []string{kyapay.ProductionIssuer}
	cfg.JWKSURLs = map[string]string{kyapay.ProductionIssuer: iss.JWKSURL()}
	v, err := kyapay.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c, err := v.Verify(context.Background(), iss.Mint(kyapay.TypePay))
	if err != nil {
		t.Fatalf("trailing-slash token against the preset: %v", err)
	}
	if c.Issuer != kyapay.ProductionIssuer+"/" {
		t.Errorf("Claims.Issuer = %q", c.Issuer)
	}
}

// TestLegacySkyfireEmail: the option writes bid.skyfireEmail, not
// bid.email.
func TestLegacySkyfireEmail(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	header, claims, _ := kyapaytest.Decode(iss.Mint(kyapay.TypeKYA, kyapaytest.LegacySkyfireEmail(), kyapaytest.Email("old@example.com")))
	bid, _ := claims["bid"].(map[string]any)
	if header["typ"] != "kya+JWT" || bid["skyfireEmail"] != "old@example.com" || bid["email"] != nil || claims["hid"] != nil {
		t.Errorf("typ %v, claims %v; want a legacy token with bid.skyfireEmail only", header["typ"], claims)
	}
}
