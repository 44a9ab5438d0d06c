package kyapaytest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kyapay/kyapay-go/kyapay"
)

// Pricing models of a seller service (Skyfire's priceModel, the sps claim
// of tokens), for [WithPricingModel].
const (
	PricingPayPerUse    = "pay_per_use"
	PricingSubscription = "subscription"
	PricingPayPerMB     = "pay_per_mb"
	PricingCustom       = "custom"
)

// apiConfig holds the options of the fake seller API.
type apiConfig struct {
	pricingModel string // lower case; "" means pay_per_use
}

// apiState is the mutable state of the fake seller API.
type apiState struct {
	pricingModel string                   // lower case; never written after NewIssuer
	keys         atomic.Pointer[[]string] // accepted API keys, first is primary; never empty
}

// init sets the API up from the issuer's configuration.
func (a *apiState) init(cfg config) {
	a.pricingModel = cfg.api.pricingModel
	if a.pricingModel == "" {
		a.pricingModel = PricingPayPerUse
	}
	keys := []string{cfg.apiKey}
	a.keys.Store(&keys)
}

// primaryKey returns the first accepted API key.
func (a *apiState) primaryKey() string { return (*a.keys.Load())[0] }

// WithPricingModel sets the pricing model of the seller service the fake
// API charges for: [PricingPayPerUse] (the default), [PricingSubscription],
// [PricingPayPerMB] or [PricingCustom], in any letter case. As on Skyfire,
// a charge may omit chargeAmount (and is then charged the service price,
// [WithServicePrice]) only when the model is pay per use; otherwise such a
// charge gets 422 VALIDATION_ERROR. WithPricingModel panics on any other
// model. It does not change the sps claim of minted tokens; use
// [PricingScheme] for that.
func WithPricingModel(model string) Option {
	m := strings.ToLower(model)
	switch m {
	case PricingPayPerUse, PricingSubscription, PricingPayPerMB, PricingCustom:
	default:
		panic(fmt.Sprintf("kyapaytest: WithPricingModel(%q): want pay_per_use, subscription, pay_per_mb or custom", model))
	}
	return func(c *config) { c.api.pricingModel = m }
}

// PricingModel returns the seller service's pricing model, in lower case
// (see [WithPricingModel]).
func (i *Issuer) PricingModel() string { return i.api.pricingModel }

// SetAPIKeys replaces the seller API keys the fake API accepts, for
// example to rotate a key while requests are in flight: requests that
// arrive afterwards need one of keys, else 401 NOT_AUTHORIZED. The first
// key is the one [Issuer.APIKey] returns. It panics if keys is empty or
// holds an empty key.
func (i *Issuer) SetAPIKeys(keys ...string) {
	if len(keys) == 0 {
		panic("kyapaytest: SetAPIKeys needs at least one key")
	}
	for _, k := range keys {
		if k == "" {
			panic("kyapaytest: SetAPIKeys: empty key")
		}
	}
	cp := append([]string(nil), keys...)
	i.api.keys.Store(&cp)
}

// APIKeys returns a copy of the seller API keys the fake API accepts.
func (i *Issuer) APIKeys() []string { return append([]string(nil), *i.api.keys.Load()...) }

// Error codes of the fake seller API's error envelope
// {"code":...,"message":...,"details":{field:{"message":...}}}, as Skyfire
// spells them.
const (
	CodeBadRequest       = "BAD_REQUEST"        // 400
	CodeNotAuthorized    = "NOT_AUTHORIZED"     // 401
	CodePaymentError     = "PAYMENT_ERROR"      // 402
	CodeForbidden        = "FORBIDDEN"          // 403
	CodeNotFound         = "NOT_FOUND"          // 404
	CodeNotEligible      = "NOT_ELIGIBLE"       // 409
	CodeValidationError  = "VALIDATION_ERROR"   // 422
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED" // 405; not a documented Skyfire code
)

// errorBody is the Skyfire error envelope.
type errorBody struct {
	Code    string                  `json:"code"`
	Message string                  `json:"message"`
	Details map[string]fieldMessage `json:"details,omitempty"`
}

type fieldMessage struct {
	Message string `json:"message"`
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("kyapaytest: encoding response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError writes the error envelope; details maps a field name to its
// message (only for VALIDATION_ERROR).
func writeError(w http.ResponseWriter, status int, code, message string, details map[string]string) {
	body := errorBody{Code: code, Message: message}
	if len(details) > 0 {
		body.Details = make(map[string]fieldMessage, len(details))
		for field, msg := range details {
			body.Details[field] = fieldMessage{Message: msg}
		}
	}
	writeJSON(w, status, body)
}

func validationError(w http.ResponseWriter, field, message string) {
	writeError(w, http.StatusUnprocessableEntity, CodeValidationError, "request validation failed", map[string]string{field: message})
}

// codeForStatus returns the envelope code of an injected error status.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeNotAuthorized
	case http.StatusPaymentRequired:
		return CodePaymentError
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeNotEligible
	case http.StatusUnprocessableEntity:
		return CodeValidationError
	}
	text := http.StatusText(status)
	if text == "" {
		return "ERROR"
	}
	return strings.ToUpper(strings.NewReplacer(" ", "_", "-", "_", "'", "").Replace(text))
}

// readFields decodes a JSON object request body into its raw members.
// On failure it writes a 400 and returns false.
func readFields(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	body, _ := io.ReadAll(r.Body) // already buffered by endpoint
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "request body must be a JSON object", nil)
		return nil, false
	}
	return m, true
}

// tokenField extracts the required "token" member. On failure it writes a
// 422 and returns false.
func tokenField(w http.ResponseWriter, m map[string]json.RawMessage) (string, bool) {
	raw, ok := m["token"]
	if !ok || string(raw) == "null" {
		validationError(w, "token", "token is required")
		return "", false
	}
	var tok string
	if err := json.Unmarshal(raw, &tok); err != nil {
		validationError(w, "token", "token must be a string")
		return "", false
	}
	if tok == "" {
		validationError(w, "token", "token is required")
		return "", false
	}
	return tok, true
}

// parseChargeAmount parses chargeAmount, a JSON string ("0.01") or a bare
// JSON number written as a plain decimal.
func parseChargeAmount(raw json.RawMessage) (kyapay.Amount, error) {
	s := string(raw)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return kyapay.Amount{}, err
		}
	}
	a, err := kyapay.ParseAmount(s)
	if err != nil {
		return kyapay.Amount{}, err
	}
	if a.IsZero() {
		return kyapay.Amount{}, errors.New("must be greater than zero")
	}
	return a, nil
}

// checkedToken is a token whose signature verified against a published key
// and whose jti the ledger knows.
type checkedToken struct {
	jti    string
	typ    kyapay.TokenType
	exp    time.Time
	hasExp bool
	nbf    time.Time
	hasNbf bool
}

// checkToken verifies a token the way the real API would: ES256 over a
// published key, minted by this issuer. It returns a caller-safe problem
// description when the token is refused.
func (i *Issuer) checkToken(tok string) (checkedToken, string) {
	p, err := parseToken(tok)
	if err != nil {
		return checkedToken{}, "token is malformed"
	}
	if alg, _ := p.header["alg"].(string); alg != "ES256" {
		return checkedToken{}, "token algorithm is not ES256"
	}
	kid, _ := p.header["kid"].(string)
	pub, ok := i.publishedKey(kid)
	if !ok {
		return checkedToken{}, "token signing key is unknown"
	}
	if !p.verify(pub) {
		return checkedToken{}, "token signature is invalid"
	}
	c := checkedToken{jti: p.stringClaim("jti")}
	typ, known := i.tokenType(c.jti)
	if c.jti == "" || !known {
		return checkedToken{}, "token was not issued by this issuer"
	}
	c.typ = typ
	if c.exp, c.hasExp, err = timeClaim(p.claims, "exp"); err != nil {
		return checkedToken{}, err.Error()
	}
	if c.nbf, c.hasNbf, err = timeClaim(p.claims, "nbf"); err != nil {
		return checkedToken{}, err.Error()
	}
	return c, ""
}

// timeClaim reads an integer NumericDate claim.
func timeClaim(claims map[string]any, name string) (time.Time, bool, error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("token claim %s is not a number", name)
	}
	sec, err := n.Int64()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("token claim %s is not an integer", name)
	}
	return time.Unix(sec, 0), true, nil
}

// chargeResponse is the 200 body of POST /api/v1/tokens/charge.
type chargeResponse struct {
	AmountCharged    kyapay.Amount `json:"amountCharged"`
	RemainingBalance kyapay.Amount `json:"remainingBalance"`
	TransactionID    string        `json:"transactionId"`
}

// serveCharge answers POST /api/v1/tokens/charge.
func (i *Issuer) serveCharge(w http.ResponseWriter, r *http.Request) {
	m, ok := readFields(w, r)
	if !ok {
		return
	}
	tok, ok := tokenField(w, m)
	if !ok {
		return
	}
	amount := i.servicePrice
	if raw, present := m["chargeAmount"]; present && string(raw) != "null" {
		a, err := parseChargeAmount(raw)
		if err != nil {
			validationError(w, "chargeAmount", "chargeAmount must be a decimal string greater than zero with at most 6 decimal places")
			return
		}
		amount = a
	} else if i.api.pricingModel != PricingPayPerUse {
		validationError(w, "chargeAmount", "chargeAmount is required: the seller service is priced "+i.api.pricingModel+", not pay_per_use")
		return
	}
	c, problem := i.checkToken(tok)
	if problem != "" {
		writeError(w, http.StatusUnauthorized, CodeNotAuthorized, problem, nil)
		return
	}
	if !c.typ.HasPayment() {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "kya tokens cannot be charged", nil)
		return
	}
	if c.hasExp && i.now().After(c.exp.Add(ChargeGracePeriod)) {
		writeError(w, http.StatusUnauthorized, CodeNotAuthorized, "token expired more than 24 hours ago", nil)
		return
	}
	if f, ok := faultOf(r); ok && f.AmountCharged != "" {
		amount = kyapay.MustParseAmount(f.AmountCharged) // checked by InjectFault
	}
	ch, rest, original, outcome := i.charge(c.jti, amount)
	switch outcome {
	case chargeOK:
		writeJSON(w, http.StatusOK, chargeResponse{AmountCharged: ch.Amount, RemainingBalance: rest, TransactionID: ch.ChargeID})
	case chargeOverOriginal:
		writeError(w, http.StatusPaymentRequired, CodePaymentError,
			fmt.Sprintf("charge amount %s exceeds the token amount %s; remaining balance is %s", amount, original, rest), nil)
	case chargeOverBalance:
		writeError(w, http.StatusPaymentRequired, CodePaymentError,
			fmt.Sprintf("charge amount %s exceeds the remaining balance %s", amount, rest), nil)
	case chargeNotPayable:
		writeError(w, http.StatusBadRequest, CodeBadRequest, "kya tokens cannot be charged", nil)
	default:
		writeError(w, http.StatusUnauthorized, CodeNotAuthorized, "token was not issued by this issuer", nil)
	}
}

// introspectResponse is the 200 body of POST /api/v1/tokens/introspect.
type introspectResponse struct {
	IsValid          bool           `json:"isValid"`
	ValidationError  string         `json:"validationError,omitempty"`
	RemainingBalance *kyapay.Amount `json:"remainingBalance,omitempty"`
}

// serveIntrospect answers POST /api/v1/tokens/introspect. A token is
// valid when its signature verifies, this issuer minted it, it has not
// expired and its nbf has passed. remainingBalance is given for pay and
// kya-pay tokens this issuer minted.
func (i *Issuer) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	m, ok := readFields(w, r)
	if !ok {
		return
	}
	tok, ok := tokenField(w, m)
	if !ok {
		return
	}
	c, problem := i.checkToken(tok)
	if problem != "" {
		writeJSON(w, http.StatusOK, introspectResponse{ValidationError: problem})
		return
	}
	resp := introspectResponse{IsValid: true}
	now := i.now()
	switch {
	case c.hasExp && now.After(c.exp):
		resp = introspectResponse{ValidationError: "token has expired"}
	case c.hasNbf && now.Before(c.nbf):
		resp = introspectResponse{ValidationError: "token is not valid yet"}
	}
	if c.typ.HasPayment() {
		if b, ok := i.Balance(c.jti); ok {
			resp.RemainingBalance = &b
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// Page sizes of GET /api/v1/tokens/{jti}/charges.
const (
	DefaultChargesPageSize = 100
	MaxChargesPageSize     = 1000
)

// chargeItem is one entry of the charges list.
type chargeItem struct {
	TokenID   string        `json:"tokenId"`
	ChargeID  string        `json:"chargeId"`
	Value     kyapay.Amount `json:"value"`
	ChargedAt string        `json:"chargedAt"`
}

type chargesResponse struct {
	Data           []chargeItem `json:"data"`
	NextPageCursor string       `json:"nextPageCursor"`
}

// serveCharges answers GET /api/v1/tokens/{jti}/charges?size=N&pageCursor=C.
func (i *Issuer) serveCharges(w http.ResponseWriter, r *http.Request) {
	jti := r.PathValue("jti")
	q := r.URL.Query()
	size := DefaultChargesPageSize
	if s := q.Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxChargesPageSize {
			validationError(w, "size", fmt.Sprintf("size must be an integer from 1 to %d", MaxChargesPageSize))
			return
		}
		size = n
	}
	offset, hasCursor := 0, false
	if c := q.Get("pageCursor"); c != "" {
		n, ok := decodeCursor(c)
		if !ok {
			validationError(w, "pageCursor", "pageCursor is invalid")
			return
		}
		offset, hasCursor = n, true
	}
	page, total, ok := i.chargesPage(jti, offset, size)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, CodeNotFound, "token not found", nil)
		return
	case hasCursor && offset > total:
		validationError(w, "pageCursor", "pageCursor is invalid")
		return
	}
	end := offset + len(page)
	resp := chargesResponse{Data: make([]chargeItem, 0, len(page))}
	for _, c := range page {
		resp.Data = append(resp.Data, chargeItem{
			TokenID:   c.TokenID,
			ChargeID:  c.ChargeID,
			Value:     c.Amount,
			ChargedAt: c.At.UTC().Format(time.RFC3339Nano),
		})
	}
	if end < total {
		resp.NextPageCursor = encodeCursor(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

// Page cursors are opaque to clients: base64url of "offset:N".
func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodeCursor(c string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
