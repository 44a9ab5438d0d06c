package kyapaytest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	chargeapi "github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// chargeClient returns a chargeapi.Client for the issuer's API that never
// retries (so each call is exactly one request).
func chargeClient(t *testing.T, iss *kyapaytest.Issuer) *chargeapi.Client {
	t.Helper()
	c, err := chargeapi.New(chargeapi.Config{BaseURL: iss.APIBaseURL(), APIKey: chargeapi.APIKey(iss.APIKey()),
		HTTPClient: iss.Client(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChargeOmittedAmountNeedsPayPerUse(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		model   string // "" means the default
		omitted bool   // whether an omitted chargeAmount is charged
	}{
		{"", true},
		{"pay_per_use", true},
		{"PAY_PER_USE", true},
		{"subscription", false},
		{"pay_per_mb", false},
		{"CUSTOM", false},
	} {
		t.Run(tt.model, func(t *testing.T) {
			t.Parallel()
			opts := []kyapaytest.Option{kyapaytest.WithServicePrice("0.05")}
			if tt.model != "" {
				opts = append(opts, kyapaytest.WithPricingModel(tt.model))
			}
			iss := kyapaytest.NewIssuer(opts...)
			defer iss.Close()
			if want := strings.ToLower(tt.model); want != "" && iss.PricingModel() != want {
				t.Errorf("PricingModel() = %q; want %q", iss.PricingModel(), want)
			}
			tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
			res := charge(t, iss, tok, "")
			if tt.omitted {
				wantStatus(t, res, 200, "")
				if got := str(res.Body, "amountCharged"); got != "0.05" {
					t.Errorf("amountCharged = %q; want the service price 0.05", got)
				}
			} else {
				wantStatus(t, res, 422, kyapaytest.CodeValidationError)
				if !strings.Contains(res.Raw, "chargeAmount") {
					t.Errorf("422 does not name chargeAmount: %s", res.Raw)
				}
				if iss.ChargeCount() != 0 {
					t.Errorf("ledger has %d charges; want 0", iss.ChargeCount())
				}
				// Through the client: a refused request, not a balance decline.
				_, err := chargeClient(t, iss).ChargeServicePrice(t.Context(), tok)
				if chargeapi.OutcomeOf(err) != chargeapi.OutcomeDeclined || chargeapi.ReasonOf(err) != chargeapi.ReasonInvalidRequest {
					t.Errorf("ChargeServicePrice: %v; want declined invalid_request", err)
				}
			}
			// An explicit amount is always accepted.
			wantStatus(t, charge(t, iss, tok, "0.02"), 200, "")
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("WithPricingModel(\"free\") did not panic")
		}
	}()
	kyapaytest.WithPricingModel("free")
}

func TestFaultAmountCharged(t *testing.T) {
	t.Parallel()
	for _, reported := range []string{"0.000001", "0", "0.5"} {
		t.Run(reported, func(t *testing.T) {
			t.Parallel()
			iss := kyapaytest.NewIssuer()
			defer iss.Close()
			tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("10"))
			jti := kyapaytest.TokenID(tok)
			iss.InjectFault(kyapaytest.Fault{Endpoint: kyapaytest.EndpointCharge, AmountCharged: reported, Times: 1})

			r, err := chargeClient(t, iss).Charge(t.Context(), tok, kyapay.MustParseAmount("5"))
			if err != nil {
				t.Fatal(err)
			}
			want := kyapay.MustParseAmount(reported)
			if r.AmountCharged != want {
				t.Errorf("receipt amountCharged = %s; want %s", r.AmountCharged, reported)
			}
			rest, _ := kyapay.MustParseAmount("10").Sub(want)
			if !r.HasRemainingBalance || r.RemainingBalance != rest {
				t.Errorf("receipt remaining = %s; want %s", r.RemainingBalance, rest)
			}
			// The ledger agrees with the answer: that amount moved.
			if got := iss.ChargesFor(jti); len(got) != 1 || got[0].Amount != want || got[0].ChargeID != r.TransactionID {
				t.Errorf("ledger = %+v; want one charge of %s with the receipt's id", got, reported)
			}
			if b, _ := iss.Balance(jti); b != rest {
				t.Errorf("balance = %s; want %s", b, rest)
			}
			// Times: 1 — the next charge is for the amount asked.
			r, err = chargeClient(t, iss).Charge(t.Context(), tok, kyapay.MustParseAmount("1"))
			if err != nil || r.AmountCharged != kyapay.MustParseAmount("1") {
				t.Errorf("second charge: %+v, %v; want 1 charged", r, err)
			}
		})
	}
	for name, f := range map[string]kyapaytest.Fault{
		"bad amount":     {Endpoint: kyapaytest.EndpointCharge, AmountCharged: "-1"},
		"wrong endpoint": {Endpoint: kyapaytest.EndpointIntrospect, AmountCharged: "1"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: InjectFault did not panic", name)
				}
			}()
			iss := kyapaytest.NewIssuer()
			defer iss.Close()
			iss.InjectFault(f)
		}()
	}
}

func TestTransientPaymentError(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
	jti := kyapaytest.TokenID(tok)
	iss.InjectFault(kyapaytest.TransientPaymentError(1))

	res := charge(t, iss, tok, "0.01")
	wantStatus(t, res, 402, kyapaytest.CodePaymentError)
	if str(res.Body, "message") != kyapaytest.TransientPaymentErrorMessage {
		t.Errorf("message = %q", str(res.Body, "message"))
	}
	if b, _ := iss.Balance(jti); b != kyapay.MustParseAmount("1") || iss.ChargeCount() != 0 {
		t.Errorf("balance %s, %d charges; want 1 and none", b, iss.ChargeCount())
	}

	// The charge client tells it from a spent token.
	iss.InjectFault(kyapaytest.TransientPaymentError(1))
	c := chargeClient(t, iss)
	_, err := c.Charge(t.Context(), tok, kyapay.MustParseAmount("0.01"))
	if chargeapi.OutcomeOf(err) != chargeapi.OutcomeDeclined || chargeapi.ReasonOf(err) != chargeapi.ReasonPaymentFailed ||
		errors.Is(err, chargeapi.ErrInsufficientBalance) {
		t.Errorf("transient 402: %v (reason %v); want declined payment_failed", err, chargeapi.ReasonOf(err))
	}
	// The fault is spent; the balance is intact and can be charged.
	if _, err := c.Charge(t.Context(), tok, kyapay.MustParseAmount("1")); err != nil {
		t.Fatalf("charge after the transient failure: %v", err)
	}
	_, err = c.Charge(t.Context(), tok, kyapay.MustParseAmount("0.01"))
	if chargeapi.ReasonOf(err) != chargeapi.ReasonInsufficientBalance || !errors.Is(err, chargeapi.ErrInsufficientBalance) {
		t.Errorf("spent token: %v (reason %v); want insufficient_balance", err, chargeapi.ReasonOf(err))
	}
	// And a price above the token amount is a balance decline too.
	_, err = c.Charge(t.Context(), iss.Mint(kyapay.TypePay, kyapaytest.Amount("1")), kyapay.MustParseAmount("2"))
	if chargeapi.ReasonOf(err) != chargeapi.ReasonInsufficientBalance {
		t.Errorf("over the token amount: %v; want insufficient_balance", err)
	}
}

// TestUnknownOutcomesAreListed checks that a charge whose answer never
// arrived (timeout, closed or reset connection after the charge) can be
// resolved through GET /api/v1/tokens/{jti}/charges, as a seller would
// with Skyfire.
func TestUnknownOutcomesAreListed(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]kyapaytest.Fault{
		"timeout after charge": {TimeoutAfterCharge: true},
		"close after charge":   {ChargeFirst: true, CloseConnection: true},
		"reset after charge":   {ChargeFirst: true, ResetConnection: true},
		"500 after charge":     {ChargeFirst: true, Status: 500},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			iss := kyapaytest.NewIssuer()
			defer iss.Close()
			tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
			jti := kyapaytest.TokenID(tok)
			c := chargeClient(t, iss)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			f.Endpoint, f.Times = kyapaytest.EndpointCharge, 1
			if f.TimeoutAfterCharge {
				f.OnApply = cancel // the seller gives up once the charge is made
			}
			iss.InjectFault(f)

			_, err := c.Charge(ctx, tok, kyapay.MustParseAmount("0.25"))
			if chargeapi.OutcomeOf(err) != chargeapi.OutcomeUnknown {
				t.Fatalf("Charge: %v; want an unknown outcome", err)
			}
			if strings.HasPrefix(name, "reset") && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("reset fault gave %v; want ECONNRESET", err)
			}
			listed, err := c.AllTokenCharges(t.Context(), jti)
			if err != nil {
				t.Fatal(err)
			}
			ledger := iss.ChargesFor(jti)
			if len(listed) != 1 || len(ledger) != 1 || listed[0].Amount != kyapay.MustParseAmount("0.25") ||
				listed[0].ChargeID != ledger[0].ChargeID || listed[0].TokenID != jti {
				t.Fatalf("listed %+v, ledger %+v; want the one charge of 0.25", listed, ledger)
			}
		})
	}
}

func TestSetAPIKeys(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(kyapaytest.WithAPIKey("old-key"))
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)
	try := func(key string) int {
		t.Helper()
		return callWith(t, t.Context(), iss, key, http.MethodPost, kyapaytest.ChargePath, chargeBody(tok)).Status
	}
	if got := try("old-key"); got != 200 {
		t.Fatalf("old key before rotation: %d", got)
	}
	// Both keys during a rotation, then only the new one.
	iss.SetAPIKeys("new-key", "old-key")
	if try("old-key") != 200 || try("new-key") != 200 || iss.APIKey() != "new-key" {
		t.Fatalf("during rotation: old %d new %d primary %q", try("old-key"), try("new-key"), iss.APIKey())
	}
	iss.SetAPIKeys("new-key")
	if got := try("old-key"); got != 401 {
		t.Errorf("old key after rotation: %d; want 401", got)
	}
	if got := try("new-key"); got != 200 {
		t.Errorf("new key after rotation: %d; want 200", got)
	}
	if got := try(""); got != 401 {
		t.Errorf("no key: %d; want 401", got)
	}
	keys := iss.APIKeys()
	keys[0] = "mutated"
	if iss.APIKey() != "new-key" {
		t.Error("APIKeys returned the issuer's own slice")
	}
	for _, bad := range [][]string{nil, {"k", ""}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SetAPIKeys(%q) did not panic", bad)
				}
			}()
			iss.SetAPIKeys(bad...)
		}()
	}
}

func TestChargesPageBounds(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)
	jti := kyapaytest.TokenID(tok)
	for range 3 {
		wantStatus(t, charge(t, iss, tok, "0.01"), 200, "")
	}
	c := chargeClient(t, iss)
	p, err := c.TokenCharges(t.Context(), jti, "", 2)
	if err != nil || len(p.Charges) != 2 || p.NextPageCursor == "" {
		t.Fatalf("page 1: %+v, %v", p, err)
	}
	p, err = c.TokenCharges(t.Context(), jti, p.NextPageCursor, 2)
	if err != nil || len(p.Charges) != 1 || p.NextPageCursor != "" {
		t.Fatalf("page 2: %+v, %v", p, err)
	}
	// A cursor at the end gives an empty last page; one past it is invalid.
	path := kyapaytest.ChargesPathPrefix + url.PathEscape(jti) + "/charges?pageCursor="
	wantStatus(t, call(t, iss, http.MethodGet, path+"b2Zmc2V0OjM", nil), 200, "") // offset:3
	wantStatus(t, call(t, iss, http.MethodGet, path+"b2Zmc2V0OjQ", nil), 422, kyapaytest.CodeValidationError)
	all, err := c.AllTokenCharges(t.Context(), jti)
	if err != nil || len(all) != 3 {
		t.Fatalf("AllTokenCharges: %d, %v", len(all), err)
	}
}
