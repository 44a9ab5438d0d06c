package kyapaytest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/kyapay/kyapaytest"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func TestChargeExactArithmetic(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.03"))
	jti := kyapaytest.TokenID(tok)

	var ids []string
	for _, want := range []string{"0.02", "0.01", "0"} {
		res := charge(t, iss, tok, "0.01")
		wantStatus(t, res, 200, "")
		if got := str(res.Body, "amountCharged"); got != "0.01" {
			t.Errorf("amountCharged = %q; want 0.01", got)
		}
		if got := str(res.Body, "remainingBalance"); got != want {
			t.Errorf("remainingBalance = %q; want %q", got, want)
		}
		ids = append(ids, str(res.Body, "transactionId"))
	}
	res := charge(t, iss, tok, "0.01")
	wantStatus(t, res, 402, kyapaytest.CodePaymentError)
	if msg := str(res.Body, "message"); !strings.Contains(msg, "balance") {
		t.Errorf("402 message %q does not mention the balance", msg)
	}

	if b, ok := iss.Balance(jti); !ok || !b.IsZero() {
		t.Errorf("Balance = %v, %v; want 0, true", b, ok)
	}
	charges := iss.ChargesFor(jti)
	if len(charges) != 3 || iss.ChargeCount() != 3 || len(iss.Charges()) != 3 {
		t.Fatalf("ledger has %d/%d/%d charges; want 3", len(charges), iss.ChargeCount(), len(iss.Charges()))
	}
	for n, c := range charges {
		if c.TokenID != jti || c.ChargeID != ids[n] || c.Amount != kyapay.MustParseAmount("0.01") || c.At.IsZero() {
			t.Errorf("charge %d = %+v", n, c)
		}
	}
	if got := iss.Requests(kyapaytest.EndpointCharge); got != 4 {
		t.Errorf("Requests(charge) = %d; want 4", got)
	}
}

func TestChargeAmounts(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer(kyapaytest.WithServicePrice("0.05"))
	defer iss.Close()

	t.Run("service price when omitted", func(t *testing.T) {
		tok := iss.Mint(kyapay.TypePay)
		res := charge(t, iss, tok, "")
		wantStatus(t, res, 200, "")
		if str(res.Body, "amountCharged") != "0.05" || str(res.Body, "remainingBalance") != "9.95" {
			t.Errorf("body = %s", res.Raw)
		}
		res = call(t, iss, http.MethodPost, kyapaytest.ChargePath, map[string]any{"token": tok, "chargeAmount": nil})
		wantStatus(t, res, 200, "")
		if str(res.Body, "remainingBalance") != "9.9" {
			t.Errorf("body = %s", res.Raw)
		}
	})
	t.Run("bare JSON number", func(t *testing.T) {
		tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("1"))
		res := call(t, iss, http.MethodPost, kyapaytest.ChargePath, `{"token":"`+tok+`","chargeAmount":0.3}`)
		wantStatus(t, res, 200, "")
		if str(res.Body, "remainingBalance") != "0.7" {
			t.Errorf("body = %s", res.Raw)
		}
	})
	t.Run("micro amounts", func(t *testing.T) {
		tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.000003"))
		for _, want := range []string{"0.000002", "0.000001", "0"} {
			res := charge(t, iss, tok, "0.000001")
			wantStatus(t, res, 200, "")
			if got := str(res.Body, "remainingBalance"); got != want {
				t.Errorf("remainingBalance = %q; want %q", got, want)
			}
		}
	})
	t.Run("kya-pay and legacy", func(t *testing.T) {
		for _, tok := range []string{
			iss.Mint(kyapay.TypeKYAPay),
			iss.Mint(kyapay.TypePay, kyapaytest.Legacy()),
			iss.Mint(kyapay.TypeKYAPay, kyapaytest.Legacy(), kyapaytest.Amount("15")),
		} {
			wantStatus(t, charge(t, iss, tok, "1"), 200, "")
		}
	})
	t.Run("over token amount", func(t *testing.T) {
		tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("5"), kyapaytest.Balance("100"))
		res := charge(t, iss, tok, "5.000001")
		wantStatus(t, res, 402, kyapaytest.CodePaymentError)
		if msg := str(res.Body, "message"); !strings.Contains(msg, "balance") {
			t.Errorf("message %q does not mention the balance", msg)
		}
		wantStatus(t, charge(t, iss, tok, "5"), 200, "")
	})
	t.Run("over starting balance", func(t *testing.T) {
		tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("5"), kyapaytest.Balance("0.02"))
		res := charge(t, iss, tok, "0.03")
		wantStatus(t, res, 402, kyapaytest.CodePaymentError)
		if !strings.Contains(str(res.Body, "message"), "remaining balance 0.02") {
			t.Errorf("message = %q", str(res.Body, "message"))
		}
		if b, _ := iss.Balance(kyapaytest.TokenID(tok)); b.String() != "0.02" {
			t.Errorf("balance = %v; want 0.02", b)
		}
	})
	t.Run("malformed chargeAmount", func(t *testing.T) {
		tok := iss.Mint(kyapay.TypePay)
		before := iss.ChargeCount()
		for _, raw := range []string{`"abc"`, `"-1"`, `"0"`, `"0.000"`, `"0.0000001"`, `"1e3"`, `""`, `" 1"`, `"1."`, `"NaN"`, `-1`, `0`, `1e2`, `true`, `{}`, `["1"]`} {
			res := call(t, iss, http.MethodPost, kyapaytest.ChargePath, `{"token":"`+tok+`","chargeAmount":`+raw+`}`)
			wantStatus(t, res, 422, kyapaytest.CodeValidationError)
			details, _ := res.Body["details"].(map[string]any)
			field, _ := details["chargeAmount"].(map[string]any)
			if str(field, "message") == "" {
				t.Errorf("chargeAmount %s: details = %s", raw, res.Raw)
			}
		}
		if iss.ChargeCount() != before {
			t.Error("a malformed charge was recorded")
		}
	})
}

func TestChargeRefusals(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	pay := iss.Mint(kyapay.TypePay)

	t.Run("kya", func(t *testing.T) {
		for _, tok := range []string{iss.Mint(kyapay.TypeKYA), iss.Mint(kyapay.TypeKYA, kyapaytest.Legacy(), kyapaytest.Amount("5"))} {
			res := charge(t, iss, tok, "0.01")
			wantStatus(t, res, 400, kyapaytest.CodeBadRequest)
			if str(res.Body, "message") != "kya tokens cannot be charged" {
				t.Errorf("message = %q", str(res.Body, "message"))
			}
		}
	})
	t.Run("api key", func(t *testing.T) {
		body := map[string]any{"token": pay}
		for _, key := range []string{"", "wrong", iss.APIKey() + "x"} {
			for _, ep := range []struct{ method, path string }{
				{http.MethodPost, kyapaytest.ChargePath},
				{http.MethodPost, kyapaytest.IntrospectPath},
				{http.MethodGet, kyapaytest.ChargesPathPrefix + kyapaytest.TokenID(pay) + "/charges"},
			} {
				res := callWith(t, t.Context(), iss, key, ep.method, ep.path, body)
				wantStatus(t, res, 401, kyapaytest.CodeNotAuthorized)
			}
		}
	})
	t.Run("custom api key", func(t *testing.T) {
		other := kyapaytest.NewIssuer(kyapaytest.WithAPIKey("sk-123"))
		defer other.Close()
		if other.APIKey() != "sk-123" {
			t.Fatalf("APIKey = %q", other.APIKey())
		}
		tok := other.Mint(kyapay.TypePay)
		wantStatus(t, callWith(t, t.Context(), other, kyapaytest.DefaultAPIKey, http.MethodPost, kyapaytest.ChargePath, map[string]any{"token": tok}), 401, kyapaytest.CodeNotAuthorized)
		wantStatus(t, callWith(t, t.Context(), other, "sk-123", http.MethodPost, kyapaytest.ChargePath, map[string]any{"token": tok}), 200, "")
	})
	t.Run("bad tokens", func(t *testing.T) {
		other := kyapaytest.NewIssuer()
		defer other.Close()
		parts := strings.Split(pay, ".")
		tampered := parts[0] + "." + strings.TrimRight(parts[1], "A") + "A." + parts[2]
		for name, tok := range map[string]string{
			"garbage":      "garbage",
			"two parts":    parts[0] + "." + parts[1],
			"tampered":     tampered,
			"foreign key":  iss.Mint(kyapay.TypePay, kyapaytest.SignWith(kyapaytest.NewKey(), "key-1")),
			"unknown kid":  iss.Mint(kyapay.TypePay, kyapaytest.Header("kid", "key-9")),
			"alg none":     iss.Mint(kyapay.TypePay, kyapaytest.Header("alg", "none")),
			"other issuer": other.Mint(kyapay.TypePay),
			"no jti":       iss.Mint(kyapay.TypePay, kyapaytest.WithoutClaim("jti")),
		} {
			res := charge(t, iss, tok, "0.01")
			if res.Status != 401 || str(res.Body, "code") != kyapaytest.CodeNotAuthorized {
				t.Errorf("%s: status %d body %s; want 401 NOT_AUTHORIZED", name, res.Status, res.Raw)
			}
		}
	})
	t.Run("bad bodies", func(t *testing.T) {
		wantStatus(t, call(t, iss, http.MethodPost, kyapaytest.ChargePath, "not json"), 400, kyapaytest.CodeBadRequest)
		wantStatus(t, call(t, iss, http.MethodPost, kyapaytest.ChargePath, "[]"), 400, kyapaytest.CodeBadRequest)
		for _, body := range []string{`{}`, `{"token":null}`, `{"token":""}`, `{"token":5}`} {
			res := call(t, iss, http.MethodPost, kyapaytest.ChargePath, body)
			wantStatus(t, res, 422, kyapaytest.CodeValidationError)
			if _, ok := res.Body["details"].(map[string]any)["token"]; !ok {
				t.Errorf("%s: details = %s", body, res.Raw)
			}
		}
		res := call(t, iss, http.MethodGet, kyapaytest.ChargePath, nil)
		wantStatus(t, res, 405, kyapaytest.CodeMethodNotAllowed)
		res = call(t, iss, http.MethodGet, "/api/v1/nothing", nil)
		wantStatus(t, res, 404, kyapaytest.CodeNotFound)
	})
	if iss.ChargeCount() != 0 {
		t.Errorf("ChargeCount = %d; want 0", iss.ChargeCount())
	}
}

func TestChargeExpiryWindow(t *testing.T) {
	t.Parallel()
	clk := &testClock{t: t0}
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(clk.Now))
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay, kyapaytest.ExpiresIn(time.Hour))
	exp := t0.Add(time.Hour)

	clk.Set(exp.Add(time.Hour)) // expired, inside the grace window
	wantStatus(t, charge(t, iss, tok, "0.01"), 200, "")
	clk.Set(exp.Add(kyapaytest.ChargeGracePeriod)) // last accepted second
	wantStatus(t, charge(t, iss, tok, "0.01"), 200, "")
	clk.Set(exp.Add(kyapaytest.ChargeGracePeriod + time.Second))
	res := charge(t, iss, tok, "0.01")
	wantStatus(t, res, 401, kyapaytest.CodeNotAuthorized)
	if !strings.Contains(str(res.Body, "message"), "24 hours") {
		t.Errorf("message = %q", str(res.Body, "message"))
	}
	if iss.ChargeCount() != 2 {
		t.Errorf("ChargeCount = %d; want 2", iss.ChargeCount())
	}
	// The charge time comes from the issuer's clock.
	if at := iss.Charges()[1].At; !at.Equal(exp.Add(kyapaytest.ChargeGracePeriod)) {
		t.Errorf("At = %v", at)
	}
}

func TestChargeConcurrent(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay, kyapaytest.Amount("0.30"))

	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for n := 0; n < 50; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := tryCall(t.Context(), iss, iss.APIKey(), http.MethodPost, kyapaytest.ChargePath,
				map[string]any{"token": tok, "chargeAmount": "0.01"})
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- res.Status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[200] != 30 || counts[402] != 20 {
		t.Errorf("statuses = %v; want 30×200 and 20×402", counts)
	}
	if n := len(iss.ChargesFor(kyapaytest.TokenID(tok))); n != 30 {
		t.Errorf("ledger has %d charges; want 30", n)
	}
	if b, _ := iss.Balance(kyapaytest.TokenID(tok)); !b.IsZero() {
		t.Errorf("balance = %v; want 0", b)
	}
}

func TestIntrospect(t *testing.T) {
	t.Parallel()
	clk := &testClock{t: t0}
	iss := kyapaytest.NewIssuer(kyapaytest.WithClock(clk.Now))
	defer iss.Close()
	introspect := func(tok string) apiResult {
		t.Helper()
		res := call(t, iss, http.MethodPost, kyapaytest.IntrospectPath, map[string]any{"token": tok})
		wantStatus(t, res, 200, "")
		return res
	}

	pay := iss.Mint(kyapay.TypePay, kyapaytest.Amount("5"))
	res := introspect(pay)
	if res.Body["isValid"] != true || str(res.Body, "remainingBalance") != "5" {
		t.Errorf("body = %s", res.Raw)
	}
	if _, ok := res.Body["validationError"]; ok {
		t.Errorf("validationError on a valid token: %s", res.Raw)
	}
	charge(t, iss, pay, "0.01")
	if res := introspect(pay); str(res.Body, "remainingBalance") != "4.99" {
		t.Errorf("body = %s", res.Raw)
	}

	kya := iss.Mint(kyapay.TypeKYA)
	if res := introspect(kya); res.Body["isValid"] != true || res.Body["remainingBalance"] != nil {
		t.Errorf("kya: body = %s", res.Raw)
	}
	for name, tok := range map[string]string{
		"foreign":      iss.Mint(kyapay.TypePay, kyapaytest.SignWith(kyapaytest.NewKey(), "key-1")),
		"garbage":      "a.b.c",
		"expired":      iss.Mint(kyapay.TypePay, kyapaytest.ExpiresIn(-time.Second)),
		"not yet":      iss.Mint(kyapay.TypePay, kyapaytest.NotBefore(t0.Add(time.Minute))),
		"bad exp type": iss.Mint(kyapay.TypePay, kyapaytest.Claim("exp", "soon")),
	} {
		res := introspect(tok)
		if res.Body["isValid"] != false || str(res.Body, "validationError") == "" {
			t.Errorf("%s: body = %s", name, res.Raw)
		}
	}
	wantStatus(t, call(t, iss, http.MethodPost, kyapaytest.IntrospectPath, `{}`), 422, kyapaytest.CodeValidationError)
	if got := iss.Requests(kyapaytest.EndpointIntrospect); got != 9 {
		t.Errorf("Requests(introspect) = %d; want 9", got)
	}
}

func TestChargesList(t *testing.T) {
	t.Parallel()
	iss := kyapaytest.NewIssuer()
	defer iss.Close()
	tok := iss.Mint(kyapay.TypePay)
	jti := kyapaytest.TokenID(tok)
	for n := 0; n < 5; n++ {
		wantStatus(t, charge(t, iss, tok, "0.01"), 200, "")
	}
	path := kyapaytest.ChargesPathPrefix + url.PathEscape(jti) + "/charges"

	var got []string
	cursor := ""
	for page := 0; ; page++ {
		q := url.Values{"size": {"2"}}
		if cursor != "" {
			q.Set("pageCursor", cursor)
		}
		res := call(t, iss, http.MethodGet, path+"?"+q.Encode(), nil)
		wantStatus(t, res, 200, "")
		var body struct {
			Data []struct {
				TokenID   string `json:"tokenId"`
				ChargeID  string `json:"chargeId"`
				Value     string `json:"value"`
				ChargedAt string `json:"chargedAt"`
			} `json:"data"`
			NextPageCursor *string `json:"nextPageCursor"`
		}
		if err := json.Unmarshal([]byte(res.Raw), &body); err != nil {
			t.Fatal(err)
		}
		if body.NextPageCursor == nil {
			t.Fatalf("nextPageCursor missing: %s", res.Raw)
		}
		wantLen := map[int]int{0: 2, 1: 2, 2: 1}[page]
		if len(body.Data) != wantLen {
			t.Fatalf("page %d has %d items; want %d", page, len(body.Data), wantLen)
		}
		for _, d := range body.Data {
			if d.TokenID != jti || d.Value != "0.01" {
				t.Errorf("item = %+v", d)
			}
			if _, err := time.Parse(time.RFC3339, d.ChargedAt); err != nil {
				t.Errorf("chargedAt %q: %v", d.ChargedAt, err)
			}
			got = append(got, d.ChargeID)
		}
		cursor = *body.NextPageCursor
		if cursor == "" {
			break
		}
		if page > 2 {
			t.Fatal("too many pages")
		}
	}
	var want []string
	for _, c := range iss.ChargesFor(jti) {
		want = append(want, c.ChargeID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("charge IDs = %v; want %v", got, want)
	}

	// A token without charges lists nothing; a kya token is known too.
	for _, other := range []string{iss.Mint(kyapay.TypePay), iss.Mint(kyapay.TypeKYA)} {
		res := call(t, iss, http.MethodGet, kyapaytest.ChargesPathPrefix+kyapaytest.TokenID(other)+"/charges", nil)
		wantStatus(t, res, 200, "")
		if res.Raw != `{"data":[],"nextPageCursor":""}` {
			t.Errorf("body = %s", res.Raw)
		}
	}
	wantStatus(t, call(t, iss, http.MethodGet, kyapaytest.ChargesPathPrefix+"unknown/charges", nil), 404, kyapaytest.CodeNotFound)
	for _, q := range []string{"size=0", "size=x", "size=1001", "pageCursor=not-a-cursor", "pageCursor=b2Zmc2V0Ojk5"} {
		wantStatus(t, call(t, iss, http.MethodGet, path+"?"+q, nil), 422, kyapaytest.CodeValidationError)
	}
}
