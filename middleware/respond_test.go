package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// The three texts of Skyfire's "When required KYAPay tokens are missing"
// page, for a route accepting every type and costing 0.01.
const (
	seedMissing  = "ERROR: Missing KYAPay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya | pay | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
	seedPay      = "ERROR: Missing pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The required amount is 0.01 USD."
	seedDepleted = "ERROR: The given pay token is depleted. Please create and send a new pay token. The required amount is 0.01 USD."
)

// seedInvalid is the seed-shaped text for a token that is present but
// invalid: it says so, and why, instead of calling it missing.
func seedInvalid(c kyapay.Code) string {
	msg := kyapay.DefaultMessage(c)
	return "ERROR: Invalid KYAPay token in the skyfire-pay-id header. " + strings.ToUpper(msg[:1]) + msg[1:] + ". Please create an account at https://app.skyfire.xyz and create a kya | pay | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
}

// secret is the text of every internal cause; it must never reach a body.
const secret = "SECRET-kid-7f3a upstream body {\"apiKey\":\"sk_live\"}"

var errSecret = errors.New(secret)

var allCodes = []kyapay.Code{
	kyapay.CodeTokenMissing, kyapay.CodeTokenTooLarge, kyapay.CodeTokenMalformed,
	kyapay.CodeAlgorithmNotAllowed, kyapay.CodeHeaderNotAllowed, kyapay.CodeConfirmationNotSupported,
	kyapay.CodeSignatureInvalid, kyapay.CodeTokenExpired, kyapay.CodeTokenNotYetValid,
	kyapay.CodeClaimMissing, kyapay.CodeClaimInvalid, kyapay.CodeIssuerUntrusted,
	kyapay.CodeAudienceMismatch, kyapay.CodeServiceMismatch, kyapay.CodeEnvMismatch,
	kyapay.CodeTypeNotAccepted, kyapay.CodeKeyUnknown, kyapay.CodeKeysUnavailable,
	kyapay.CodeIdentityRequired, kyapay.CodeIdentityFieldsMissing, kyapay.CodePayRequired,
	kyapay.CodeAmountInsufficient, kyapay.CodeTokenDepleted, kyapay.CodeChargeDeclined,
	kyapay.CodeChargeUnknown, kyapay.CodeChargeUnavailable, kyapay.CodeInternal,
	kyapay.Code("some_future_code"),
}

var invalidCodes = []kyapay.Code{
	kyapay.CodeTokenTooLarge, kyapay.CodeTokenMalformed, kyapay.CodeAlgorithmNotAllowed,
	kyapay.CodeHeaderNotAllowed, kyapay.CodeConfirmationNotSupported, kyapay.CodeSignatureInvalid,
	kyapay.CodeTokenExpired, kyapay.CodeTokenNotYetValid, kyapay.CodeClaimMissing,
	kyapay.CodeClaimInvalid, kyapay.CodeIssuerUntrusted, kyapay.CodeAudienceMismatch,
	kyapay.CodeServiceMismatch, kyapay.CodeEnvMismatch, kyapay.CodeTypeNotAccepted,
	kyapay.CodeKeyUnknown,
}

func wantStatus(p StatusPolicy, c kyapay.Code) int {
	switch c {
	case kyapay.CodeKeysUnavailable, kyapay.CodeChargeUnavailable:
		return 503
	case kyapay.CodeChargeUnknown:
		return 502
	case kyapay.CodeInternal:
		return 500
	}
	if p == PolicySeed {
		return 402
	}
	switch c {
	case kyapay.CodeTokenMissing, kyapay.CodeIdentityRequired, kyapay.CodeIdentityFieldsMissing, kyapay.CodePayRequired:
		return 403
	case kyapay.CodeAmountInsufficient, kyapay.CodeTokenDepleted, kyapay.CodeChargeDeclined:
		return 402
	case "some_future_code":
		return 403
	}
	return 401 // invalid-token codes
}

// refusal builds a Refusal for a route accepting every type at 0.01 USD,
// with a secret internal cause.
func refusal(code kyapay.Code) *Refusal {
	return &Refusal{
		Err:      kyapay.NewError(code, "", errSecret),
		Accepted: kyapay.AnyType,
		Price:    kyapay.MustParseAmount("0.01"),
		HasPrice: true,
		Header:   kyapay.HeaderName,
	}
}

func TestStatusPolicyStatus(t *testing.T) {
	t.Parallel()
	for _, p := range []StatusPolicy{PolicySeed, PolicyStatusCodes} {
		for _, c := range allCodes {
			t.Run(p.String()+"/"+string(c), func(t *testing.T) {
				t.Parallel()
				if got, want := p.Status(c), wantStatus(p, c); got != want {
					t.Errorf("%v.Status(%s) = %d; want %d", p, c, got, want)
				}
			})
		}
	}
	if got := StatusPolicy(9).Status(kyapay.CodeTokenMissing); got != 402 {
		t.Errorf("unknown policy: Status(token_missing) = %d; want 402 (as PolicySeed)", got)
	}
	if got := PolicyStatusCodes.Status(""); got != 500 {
		t.Errorf("Status(\"\") = %d; want 500", got)
	}
}

func TestStatusPolicyString(t *testing.T) {
	t.Parallel()
	for p, want := range map[StatusPolicy]string{PolicySeed: "seed", PolicyStatusCodes: "status-codes", 7: "StatusPolicy(7)"} {
		if got := p.String(); got != want {
			t.Errorf("StatusPolicy(%d).String() = %q; want %q", uint8(p), got, want)
		}
	}
}

func TestSeedTextsExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ref  *Refusal
		want string
	}{
		{"token_missing", refusal(kyapay.CodeTokenMissing), seedMissing},
		{"identity_required", refusal(kyapay.CodeIdentityRequired), seedMissing},
		{"pay_required", refusal(kyapay.CodePayRequired), seedPay},
		{"token_depleted", refusal(kyapay.CodeTokenDepleted), seedDepleted},
		{"amount_insufficient", refusal(kyapay.CodeAmountInsufficient), seedDepleted},
		{"charge_declined/cause", func() *Refusal {
			r := refusal(kyapay.CodeChargeDeclined)
			r.Err.Err = fmt.Errorf("skyfire PAYMENT_ERROR: %w", kyapay.NewError(kyapay.CodeTokenDepleted, "", errSecret))
			return r
		}(), seedDepleted},
		{"charge_declined/charge-error", func() *Refusal {
			r := refusal(kyapay.CodeChargeDeclined)
			r.Err.Err = &charge.Error{Outcome: charge.OutcomeDeclined, Reason: charge.ReasonInsufficientBalance, Err: errSecret}
			return r
		}(), seedDepleted},
		{"charge_declined/message", func() *Refusal {
			r := refusal(kyapay.CodeChargeDeclined)
			r.Err.Message = "charge exceeds the token's remaining balance"
			return r
		}(), seedDepleted},
		// Pay and KYAPay routes accept pay | kya-pay after compile.
		{"pay_required/pay-route", &Refusal{Err: kyapay.ErrPayRequired, Accepted: kyapay.TypePay | kyapay.TypeKYAPay, Price: kyapay.MustParseAmount("0.01"), HasPrice: true}, seedPay},
		{"zero-defaults", &Refusal{Err: &kyapay.Error{Code: kyapay.CodeTokenMissing}}, seedMissing},
	}
	for _, c := range invalidCodes {
		tests = append(tests, struct {
			name string
			ref  *Refusal
			want string
		}{string(c), refusal(c), seedInvalid(c)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := RefusalMessage(tt.ref, PolicySeed); got != tt.want {
				t.Errorf("RefusalMessage =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestRefusalMessage(t *testing.T) {
	t.Parallel()
	free := func(code kyapay.Code, types kyapay.TokenTypes) *Refusal {
		return &Refusal{Err: kyapay.NewError(code, "", errSecret), Accepted: types}
	}
	withMsg := func(r *Refusal, msg string) *Refusal { r.Err.Message = msg; return r }
	const guideAll = " Please create an account at https://app.skyfire.xyz and create a KYA, Pay or KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."
	tests := []struct {
		name   string
		policy StatusPolicy
		ref    *Refusal
		want   string
	}{
		// PolicySeed.
		{"seed/types-subset", PolicySeed, free(kyapay.CodeTokenMissing, kyapay.TypeKYA|kyapay.TypeKYAPay),
			"ERROR: Missing KYAPay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"seed/custom-header", PolicySeed, &Refusal{Err: kyapay.ErrTokenExpired, Accepted: kyapay.TypePay, Header: "kyapay-token"},
			"ERROR: Invalid KYAPay token in the kyapay-token header. Token has expired. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the kyapay-token header."},
		{"seed/identity-fields-list", PolicySeed, withMsg(free(kyapay.CodeIdentityFieldsMissing, kyapay.TypeKYA|kyapay.TypeKYAPay), "missing identity fields: email, given_name"),
			"ERROR: Missing KYAPay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya | kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The token must carry these identity fields: email, given_name."},
		{"seed/identity-fields-default", PolicySeed, free(kyapay.CodeIdentityFieldsMissing, kyapay.AnyType),
			seedMissing + " Token lacks required identity fields."},
		{"seed/pay-no-price", PolicySeed, free(kyapay.CodePayRequired, kyapay.AnyType),
			"ERROR: Missing pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"seed/pay-kyapay-only", PolicySeed, free(kyapay.CodePayRequired, kyapay.TypeKYAPay),
			"ERROR: Missing kya+pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a kya+pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"seed/depleted-no-price", PolicySeed, free(kyapay.CodeTokenDepleted, kyapay.AnyType),
			"ERROR: The given pay token is depleted. Please create and send a new pay token."},
		{"seed/depleted-price", PolicySeed, &Refusal{Err: kyapay.ErrTokenDepleted, Price: kyapay.MustParseAmount("2.5"), HasPrice: true},
			"ERROR: The given pay token is depleted. Please create and send a new pay token. The required amount is 2.5 USD."},
		{"seed/declined", PolicySeed, refusal(kyapay.CodeChargeDeclined), "ERROR: charge was declined"},
		{"seed/charge_unknown", PolicySeed, refusal(kyapay.CodeChargeUnknown),
			"ERROR: charge outcome is unknown; do not pay again, retry with the same token later"},
		{"seed/charge_unknown-custom", PolicySeed, withMsg(refusal(kyapay.CodeChargeUnknown), "payment service timed out"),
			"ERROR: payment service timed out. Do not pay again: the charge may have gone through; retry later with the same token."},
		{"seed/charge_unavailable", PolicySeed, refusal(kyapay.CodeChargeUnavailable),
			"ERROR: payment service unavailable; nothing was charged, retry later"},
		{"seed/keys_unavailable", PolicySeed, refusal(kyapay.CodeKeysUnavailable),
			"ERROR: issuer keys are unavailable; try again later"},
		{"seed/internal", PolicySeed, refusal(kyapay.CodeInternal), "ERROR: internal error"},
		{"seed/nil", PolicySeed, nil, "ERROR: internal error"},
		{"seed/nil-err", PolicySeed, &Refusal{}, "ERROR: internal error"},
		{"seed/future", PolicySeed, refusal("some_future_code"), "ERROR: request refused"},

		// PolicyStatusCodes.
		{"codes/missing", PolicyStatusCodes, refusal(kyapay.CodeTokenMissing),
			"Missing KYA, Pay or KYA-Pay token in the skyfire-pay-id header." + guideAll},
		{"codes/missing-pay-only", PolicyStatusCodes, free(kyapay.CodeTokenMissing, kyapay.TypePay),
			"Missing Pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"codes/expired", PolicyStatusCodes, free(kyapay.CodeTokenExpired, kyapay.TypeKYA|kyapay.TypeKYAPay),
			"Invalid KYA or KYA-Pay token in the skyfire-pay-id header. Token has expired. Please create an account at https://app.skyfire.xyz and create a KYA or KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"codes/signature", PolicyStatusCodes, refusal(kyapay.CodeSignatureInvalid),
			"Invalid KYA, Pay or KYA-Pay token in the skyfire-pay-id header. Token signature is invalid." + guideAll},
		{"codes/identity_required", PolicyStatusCodes, free(kyapay.CodeIdentityRequired, kyapay.TypeKYA|kyapay.TypeKYAPay),
			"Missing KYA or KYA-Pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a KYA or KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"codes/identity_fields", PolicyStatusCodes, withMsg(free(kyapay.CodeIdentityFieldsMissing, kyapay.TypeKYAPay), "missing identity fields: email"),
			"Missing KYA-Pay token in the skyfire-pay-id header. The token must carry these identity fields: email. Please create an account at https://app.skyfire.xyz and create a KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header."},
		{"codes/pay_required", PolicyStatusCodes, refusal(kyapay.CodePayRequired),
			"Missing Pay or KYA-Pay token in the skyfire-pay-id header. Please create an account at https://app.skyfire.xyz and create a Pay or KYA-Pay token - https://docs.skyfire.xyz/reference/create-token and include it in your request in the skyfire-pay-id header. The required amount is 0.01 USD."},
		{"codes/depleted", PolicyStatusCodes, refusal(kyapay.CodeTokenDepleted),
			"The balance on the given 'pay' token is not enough. Please create and send a new pay token. The required amount is 0.01 USD."},
		{"codes/insufficient-kyapay-only", PolicyStatusCodes, free(kyapay.CodeAmountInsufficient, kyapay.TypeKYAPay),
			"The balance on the given 'kya-pay' token is not enough. Please create and send a new kya-pay token."},
		{"codes/declined", PolicyStatusCodes, refusal(kyapay.CodeChargeDeclined), "Charge was declined."},
		{"codes/charge_unknown", PolicyStatusCodes, refusal(kyapay.CodeChargeUnknown),
			"Charge outcome is unknown; do not pay again, retry with the same token later."},
		{"codes/charge_unknown-custom", PolicyStatusCodes, withMsg(refusal(kyapay.CodeChargeUnknown), "Skyfire did not answer in time."),
			"Skyfire did not answer in time. Do not pay again: the charge may have gone through; retry later with the same token."},
		{"codes/internal", PolicyStatusCodes, refusal(kyapay.CodeInternal), "Internal error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := RefusalMessage(tt.ref, tt.policy)
			if got != tt.want {
				t.Errorf("RefusalMessage =\n%q\nwant\n%q", got, tt.want)
			}
			if strings.Contains(got, "SECRET") {
				t.Errorf("message leaks the internal cause: %q", got)
			}
		})
	}
}

// serve runs the default handler for ref and returns the recorded response.
func serve(t *testing.T, p StatusPolicy, ref error, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	if req == nil {
		req = httptest.NewRequest(http.MethodGet, "/x", nil)
	}
	rec := httptest.NewRecorder()
	DefaultErrorHandler(p)(rec, req, ref)
	return rec
}

func checkCommonHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store", got)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q; want nosniff", got)
	}
	if got, want := h.Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
		t.Errorf("Content-Length = %q; want %q", got, want)
	}
	if rec.Code == http.StatusServiceUnavailable {
		if got := h.Get("Retry-After"); got != "5" {
			t.Errorf("Retry-After = %q on 503; want 5", got)
		}
	} else if got := h.Get("Retry-After"); got != "" {
		t.Errorf("Retry-After = %q on %d; want none", got, rec.Code)
	}
	if strings.Contains(rec.Body.String(), "SECRET") || strings.Contains(rec.Body.String(), "sk_live") {
		t.Errorf("body leaks the internal cause: %s", rec.Body.String())
	}
}

type callToolResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	IsError           bool `json:"isError"`
	StructuredContent struct {
		Error              string   `json:"error"`
		Message            string   `json:"message"`
		AcceptedTokenTypes []string `json:"acceptedTokenTypes"`
		RequiredAmount     *string  `json:"requiredAmount"`
		Currency           *string  `json:"currency"`
		Header             string   `json:"header"`
		CreateTokenURL     string   `json:"createTokenUrl"`
	} `json:"structuredContent"`
}

func TestDefaultErrorHandlerEveryCode(t *testing.T) {
	t.Parallel()
	for _, p := range []StatusPolicy{PolicySeed, PolicyStatusCodes} {
		for _, c := range allCodes {
			t.Run(p.String()+"/"+string(c), func(t *testing.T) {
				t.Parallel()
				ref := refusal(c)
				want := RefusalMessage(ref, p)

				// Plain text.
				rec := serve(t, p, ref, nil)
				if rec.Code != wantStatus(p, c) {
					t.Errorf("text status = %d; want %d", rec.Code, wantStatus(p, c))
				}
				if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type = %q", got)
				}
				if got := rec.Body.String(); got != want {
					t.Errorf("text body = %q; want %q", got, want)
				}
				checkCommonHeaders(t, rec)

				// JSON, same status.
				ref.Format = FormatJSON
				rec = serve(t, p, ref, nil)
				if rec.Code != wantStatus(p, c) {
					t.Errorf("json status = %d; want %d", rec.Code, wantStatus(p, c))
				}
				if got := rec.Header().Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q", got)
				}
				checkCommonHeaders(t, rec)
				var res callToolResult
				if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
					t.Fatalf("json body: %v: %s", err, rec.Body.String())
				}
				if len(res.Content) != 1 || res.Content[0].Type != "text" || res.Content[0].Text != want {
					t.Errorf("content = %+v; want one text block %q", res.Content, want)
				}
				if !res.IsError {
					t.Error("isError = false")
				}
				sc := res.StructuredContent
				if sc.Error != string(c) || sc.Message != want || sc.Header != "skyfire-pay-id" ||
					sc.CreateTokenURL != "https://docs.skyfire.xyz/reference/create-token" ||
					strings.Join(sc.AcceptedTokenTypes, ",") != "kya,pay,kya-pay" {
					t.Errorf("structuredContent = %+v", sc)
				}
				if sc.RequiredAmount == nil || *sc.RequiredAmount != "0.01" || sc.Currency == nil || *sc.Currency != "USD" {
					t.Errorf("requiredAmount/currency = %v/%v; want 0.01/USD", sc.RequiredAmount, sc.Currency)
				}
			})
		}
	}
}

func TestSeedBodiesExact(t *testing.T) {
	t.Parallel()
	for code, want := range map[kyapay.Code]string{
		kyapay.CodeTokenMissing:     seedMissing,
		kyapay.CodeSignatureInvalid: seedInvalid(kyapay.CodeSignatureInvalid),
		kyapay.CodePayRequired:      seedPay,
		kyapay.CodeTokenDepleted:    seedDepleted,
	} {
		t.Run(string(code), func(t *testing.T) {
			t.Parallel()
			rec := serve(t, PolicySeed, refusal(code), nil)
			if rec.Code != 402 {
				t.Errorf("status = %d; want 402", rec.Code)
			}
			if got := rec.Body.String(); got != want {
				t.Errorf("body =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestJSONWithoutPrice(t *testing.T) {
	t.Parallel()
	ref := &Refusal{Err: kyapay.NewError(kyapay.CodeIdentityRequired, "", errSecret), Accepted: kyapay.TypeKYA | kyapay.TypeKYAPay, Format: FormatJSON, Header: "kyapay-token"}
	rec := serve(t, PolicyStatusCodes, ref, nil)
	if rec.Code != 403 {
		t.Errorf("status = %d; want 403", rec.Code)
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	var sc map[string]any
	if err := json.Unmarshal(res["structuredContent"], &sc); err != nil {
		t.Fatal(err)
	}
	if _, ok := sc["requiredAmount"]; ok {
		t.Errorf("requiredAmount present without a price: %v", sc)
	}
	if _, ok := sc["currency"]; ok {
		t.Errorf("currency present without a price: %v", sc)
	}
	if sc["header"] != "kyapay-token" {
		t.Errorf("header = %v", sc["header"])
	}
	if got := fmt.Sprint(sc["acceptedTokenTypes"]); got != "[kya kya-pay]" {
		t.Errorf("acceptedTokenTypes = %s", got)
	}
}

func rpcRequest(body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	return req
}

func TestJSONRPCWrapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		wantID string // "" means no wrapping
	}{
		{"numeric", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"weather"}}`, `4`},
		{"numeric-big", `{"jsonrpc":"2.0","id":12345678901234567890,"method":"tools/call"}`, `12345678901234567890`},
		{"string", `{"jsonrpc":"2.0","id":"req-\u00e9-1","method":"tools/call"}`, `"req-\u00e9-1"`},
		{"whitespace", " \n{ \"id\" : \"a\" , \"method\":\"tools/call\", \"jsonrpc\":\"2.0\" }\n", `"a"`},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, ""},
		{"null-id", `{"jsonrpc":"2.0","id":null,"method":"tools/call"}`, ""},
		{"object-id", `{"jsonrpc":"2.0","id":{"x":1},"method":"tools/call"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref := refusal(kyapay.CodePayRequired)
			rec := serve(t, PolicySeed, ref, rpcRequest(tt.body))
			if rec.Code != 402 {
				t.Errorf("status = %d; want 402", rec.Code)
			}
			checkCommonHeaders(t, rec)
			var env struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Result  *callToolResult `json:"result"`
				callToolResult
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("%v: %s", err, rec.Body.String())
			}
			res := &env.callToolResult
			if tt.wantID != "" {
				if env.JSONRPC != "2.0" || env.Result == nil {
					t.Fatalf("not wrapped: %s", rec.Body.String())
				}
				if string(env.ID) != tt.wantID || !bytes.Contains(rec.Body.Bytes(), []byte(`"id":`+tt.wantID+`,`)) {
					t.Errorf("id = %s; want %s echoed raw in %s", env.ID, tt.wantID, rec.Body.String())
				}
				res = env.Result
			} else if env.JSONRPC != "" || env.Result != nil {
				t.Fatalf("wrapped without an id: %s", rec.Body.String())
			}
			if !res.IsError || len(res.Content) != 1 || res.Content[0].Text != seedPay || res.StructuredContent.Error != "pay_required" {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func TestJSONRPCDetection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		ct       string
		accept   string
		body     string
		format   Format
		wantJSON bool
		wantID   string
	}{
		{"rpc-no-accept", "POST", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatAuto, true, "1"},
		{"rpc-charset", "POST", "application/json; charset=utf-8", "", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatAuto, true, "1"},
		{"rpc-plus-json", "POST", "application/vnd.mcp+json", "", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatAuto, true, "1"},
		{"rpc-text-accept", "POST", "application/json", "text/plain", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatAuto, true, "1"},
		{"rpc-format-text", "POST", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatText, false, ""},
		{"rpc-format-json", "POST", "application/json", "", `{"jsonrpc":"2.0","id":"k","method":"x"}`, FormatJSON, true, `"k"`},
		{"rpc-wrong-version", "POST", "application/json", "", `{"jsonrpc":"1.0","id":1,"method":"x"}`, FormatAuto, false, ""},
		{"rpc-version-number", "POST", "application/json", "", `{"jsonrpc":2.0,"id":1,"method":"x"}`, FormatAuto, false, ""},
		{"rpc-batch", "POST", "application/json", "", `[{"jsonrpc":"2.0","id":1,"method":"x"}]`, FormatAuto, false, ""},
		{"rpc-text-ct", "POST", "text/plain", "", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatAuto, false, ""},
		{"rpc-get", "GET", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"x"}`, FormatAuto, false, ""},
		{"plain-json", "POST", "application/json", "", `{"hello":"world"}`, FormatAuto, false, ""},
		{"garbage", "POST", "application/json", "", "\x00\xff{{{[[[\"", FormatAuto, false, ""},
		{"truncated", "POST", "application/json", "", `{"jsonrpc":"2.0","id":1,"meth`, FormatAuto, false, ""},
		{"empty", "POST", "application/json", "", ``, FormatAuto, false, ""},
		{"too-large", "POST", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"x","pad":"` + strings.Repeat("a", maxRPCBody) + `"}`, FormatAuto, false, ""},
		{"json-accept", "POST", "text/plain", "application/json", `hi`, FormatAuto, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, "/mcp", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ct)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			gotJSON, gotID := wantsJSON(req, tt.format)
			if gotJSON != tt.wantJSON || string(gotID) != tt.wantID {
				t.Errorf("wantsJSON = %v, %q; want %v, %q", gotJSON, gotID, tt.wantJSON, tt.wantID)
			}
		})
	}
}

// TestBodyReadBounded checks the responder reads at most 1 MiB + 1 byte.
func TestBodyReadBounded(t *testing.T) {
	t.Parallel()
	cr := &countingReader{r: io.MultiReader(strings.NewReader(`{"jsonrpc":"2.0","x":"`), infinite{})}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body = io.NopCloser(cr)
	req.Header.Set("Content-Type", "application/json")
	rec := serve(t, PolicySeed, refusal(kyapay.CodeTokenMissing), req)
	if rec.Code != 402 || rec.Body.String() != seedMissing {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
	if cr.n > maxRPCBody+1 {
		t.Errorf("read %d bytes; want at most %d", cr.n, maxRPCBody+1)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestAcceptPrefersJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"*/*"}, false},
		{[]string{"application/json"}, true},
		{[]string{"Application/JSON"}, true},
		{[]string{"application/json;q=0.5, text/plain;q=0.9"}, false},
		{[]string{"application/json;q=0.9, text/plain;q=0.5"}, true},
		{[]string{"application/json, text/plain"}, false}, // tie means text
		{[]string{"application/json, */*;q=0.8"}, true},
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, false},
		{[]string{"application/json, text/event-stream"}, true},
		{[]string{"application/*"}, true},
		{[]string{"text/plain;q=0, */*"}, true},
		{[]string{"text/*;q=0.3, application/json;q=0.2"}, false},
		{[]string{"text/*;q=0.3, application/json;q=0.4"}, true},
		{[]string{"text/plain;q=0, application/json;q=0.001"}, true},
		{[]string{"application/json;q=0"}, false},
		{[]string{"application/json;q=2"}, false},   // malformed q: ignored
		{[]string{"application/json;q=abc"}, false}, // malformed q: ignored
		{[]string{"application/json;q=NaN"}, false}, // malformed q: ignored
		{[]string{"application/json; charset=utf-8"}, true},
		{[]string{"text/plain", "application/json;q=0.5"}, false},
		{[]string{"*/*;q=0.1", "application/json"}, true},
		{[]string{"application/json;q=0.5", "application/json;q=0.9, text/plain;q=0.8"}, true},
		{[]string{"json"}, false},
		{[]string{",,, ;;; /, */json"}, false},
		{[]string{"application/ json"}, false}, // no white space inside a media range
		{[]string{"application / *"}, false},
		{[]string{" application/json ;q=0.7 , text/plain ; q=0.6"}, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.accept, "|"), func(t *testing.T) {
			t.Parallel()
			want := tt.want
			if got := acceptPrefersJSON(tt.accept); got != want {
				t.Errorf("acceptPrefersJSON(%q) = %v; want %v", tt.accept, got, want)
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, v := range tt.accept {
				req.Header.Add("Accept", v)
			}
			rec := serve(t, PolicySeed, refusal(kyapay.CodeTokenMissing), req)
			isJSON := rec.Header().Get("Content-Type") == "application/json"
			if isJSON != want {
				t.Errorf("Accept %q: Content-Type %q", tt.accept, rec.Header().Get("Content-Type"))
			}
			if rec.Header().Get("Vary") != "Accept" {
				t.Errorf("Vary = %q; want Accept", rec.Header().Get("Vary"))
			}
		})
	}
}

func TestFormatTextIgnoresAccept(t *testing.T) {
	t.Parallel()
	ref := refusal(kyapay.CodeTokenMissing)
	ref.Format = FormatText
	req := rpcRequest(`{"jsonrpc":"2.0","id":1,"method":"x"}`)
	rec := serve(t, PolicySeed, ref, req)
	if rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || rec.Body.String() != seedMissing {
		t.Errorf("FormatText answered %q: %q", rec.Header().Get("Content-Type"), rec.Body.String())
	}
	// The body was not consumed.
	if b, _ := io.ReadAll(req.Body); len(b) == 0 {
		t.Error("FormatText read the request body")
	}
}

func TestGarbageBodiesDoNotPanic(t *testing.T) {
	t.Parallel()
	bodies := []string{
		"", "{", "}", "null", "[]", "[", `{"jsonrpc":"2.0"}`, `{"jsonrpc":"2.0","id":}`,
		`{"jsonrpc":"2.0","id":1e999,"method":"x"}`, `{"jsonrpc":"2.0","id":-0.5e3,"method":"x"}`,
		"\xff\xfe\xfd", strings.Repeat("[", 100000), `{"jsonrpc":"2.0","id":"\ud800","method":"x"}`,
		`{"jsonrpc":"2.0","id":"` + strings.Repeat("x", 1000) + `","method":"x"}`,
	}
	for i, body := range bodies {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			rec := serve(t, PolicyStatusCodes, refusal(kyapay.CodeTokenExpired), rpcRequest(body))
			if rec.Code != 401 {
				t.Errorf("status = %d; want 401", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct == "application/json" && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("invalid JSON body: %s", rec.Body.String())
			}
			checkCommonHeaders(t, rec)
		})
	}
	// A nil body.
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body = nil
	req.Header.Set("Content-Type", "application/json")
	if rec := serve(t, PolicySeed, refusal(kyapay.CodeTokenMissing), req); rec.Body.String() != seedMissing {
		t.Errorf("nil body: %q", rec.Body.String())
	}
}

func TestNonRefusalErrors(t *testing.T) {
	t.Parallel()
	t.Run("plain error", func(t *testing.T) {
		t.Parallel()
		rec := serve(t, PolicySeed, errSecret, nil)
		if rec.Code != 500 || rec.Body.String() != "ERROR: internal error" {
			t.Errorf("got %d %q", rec.Code, rec.Body.String())
		}
		checkCommonHeaders(t, rec)
	})
	t.Run("nil error", func(t *testing.T) {
		t.Parallel()
		rec := serve(t, PolicySeed, nil, nil)
		if rec.Code != 500 {
			t.Errorf("got %d", rec.Code)
		}
	})
	t.Run("wrapped kyapay error", func(t *testing.T) {
		t.Parallel()
		err := fmt.Errorf("verify: %w", kyapay.NewError(kyapay.CodeTokenExpired, "", errSecret))
		rec := serve(t, PolicyStatusCodes, err, nil)
		if rec.Code != 401 || !strings.HasPrefix(rec.Body.String(), "Invalid KYA, Pay or KYA-Pay token in the skyfire-pay-id header. Token has expired.") {
			t.Errorf("got %d %q", rec.Code, rec.Body.String())
		}
		checkCommonHeaders(t, rec)
	})
	t.Run("wrapped refusal", func(t *testing.T) {
		t.Parallel()
		err := fmt.Errorf("middleware: %w", refusal(kyapay.CodeChargeUnavailable))
		rec := serve(t, PolicySeed, err, nil)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" {
			t.Errorf("got %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
		}
		checkCommonHeaders(t, rec)
	})
	t.Run("message with internals is the caller's contract", func(t *testing.T) {
		t.Parallel()
		// Err.Err is never shown even when Error() would include it.
		ref := refusal(kyapay.CodeInternal)
		if !strings.Contains(ref.Error(), "SECRET") {
			t.Fatal("test setup: Error() should include the cause")
		}
		for _, f := range []Format{FormatText, FormatJSON} {
			ref.Format = f
			checkCommonHeaders(t, serve(t, PolicySeed, ref, nil))
		}
	})
}

func TestStaleRetryAfterRemoved(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	rec.Header().Set("Retry-After", "60")
	DefaultErrorHandler(PolicySeed)(rec, httptest.NewRequest("GET", "/", nil), refusal(kyapay.CodeTokenMissing))
	if got := rec.Header().Get("Retry-After"); got != "" {
		t.Errorf("Retry-After = %q on 402", got)
	}
}

func FuzzWantsJSON(f *testing.F) {
	f.Add("", []byte(nil))
	f.Add("*/*", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`))
	f.Add("application/json;q=0.5, text/plain;q=0.9", []byte(`{"jsonrpc":"2.0","id":"a","method":"x"}`))
	f.Add("application/json", []byte(`[`))
	f.Add("text/*;q=0.3, application/*;q=1e-1", []byte("\xff\x00"))
	f.Add(";;;,,,q=,*/*;q=", []byte(`{"jsonrpc":"2.0","id":null}`))
	f.Fuzz(func(t *testing.T, accept string, body []byte) {
		for _, format := range []Format{FormatAuto, FormatText, FormatJSON} {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", accept)
			isJSON, id := wantsJSON(req, format)
			switch {
			case format == FormatText && (isJSON || id != nil):
				t.Fatalf("FormatText gave JSON (%q)", id)
			case format == FormatJSON && !isJSON:
				t.Fatal("FormatJSON gave text")
			}
			if id != nil && !json.Valid(id) {
				t.Fatalf("invalid id %q", id)
			}
			if !strings.Contains(strings.ToLower(accept), "json") && !strings.Contains(strings.ToLower(accept), "/*") && acceptPrefersJSON([]string{accept}) {
				t.Fatalf("Accept %q without json preferred JSON", accept)
			}
			// The full handler never panics and always emits valid JSON when
			// it emits JSON.
			req = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", accept)
			ref := refusal(kyapay.CodeTokenDepleted)
			ref.Format = format
			rec := httptest.NewRecorder()
			DefaultErrorHandler(PolicySeed)(rec, req, ref)
			if rec.Header().Get("Content-Type") == "application/json" && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("invalid JSON body %s", rec.Body.String())
			}
		}
	})
}

func BenchmarkDefaultErrorHandler(b *testing.B) {
	h := DefaultErrorHandler(PolicySeed)
	ref := refusal(kyapay.CodePayRequired)
	b.Run("text", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		b.ReportAllocs()
		for b.Loop() {
			h(httptest.NewRecorder(), req, ref)
		}
	})
	b.Run("json-rpc", func(b *testing.B) {
		body := []byte(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"weather","arguments":{"city":"Paris"}}}`)
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			h(httptest.NewRecorder(), req, ref)
		}
	})
}
