package middleware

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
)

// Skyfire locations quoted in refusal bodies.
const (
	// DefaultSignupURL is where a buyer creates a Skyfire account.
	DefaultSignupURL = "https://app.skyfire.xyz"
	// DefaultSandboxSignupURL is where a buyer creates a Skyfire sandbox
	// account.
	DefaultSandboxSignupURL = "https://app-sandbox.skyfire.xyz"
	// DefaultCreateTokenURL documents Skyfire's create-token API.
	DefaultCreateTokenURL = "https://docs.skyfire.xyz/reference/create-token"
)

// retryAfterSeconds is the Retry-After value sent with every 503 refusal.
const retryAfterSeconds = "5"

// maxRPCBody bounds how much of a request body the responder reads to
// recognise a JSON-RPC message (1 MiB).
const maxRPCBody = 1 << 20

// StatusPolicy chooses the HTTP status codes (and the wording) of refusals.
// Server-side failures are answered the same way under every policy:
// keys_unavailable and charge_unavailable with 503 and a Retry-After header,
// charge_unknown with 502, internal_error with 500.
type StatusPolicy uint8

const (
	// PolicySeed follows Skyfire's page "When required KYAPay tokens are
	// missing": 402 Payment Required for a missing, invalid or depleted
	// token and for a missing pay token, with Skyfire's recommended
	// "ERROR: Missing KYAPay token in the skyfire-pay-id header. ..." texts.
	// This is the default.
	PolicySeed StatusPolicy = iota
	// PolicyStatusCodes follows Skyfire's newer guidance: 403 Forbidden when
	// a required token is missing (including a token of the wrong kind for
	// identity or payment), 401 Unauthorized when the token is invalid or
	// expired, 402 Payment Required when its balance is not enough or the
	// charge was declined. Texts name the token type ("Missing Pay token in
	// the skyfire-pay-id header.").
	PolicyStatusCodes
)

// String returns "seed" or "status-codes".
func (p StatusPolicy) String() string {
	switch p {
	case PolicySeed:
		return "seed"
	case PolicyStatusCodes:
		return "status-codes"
	}
	return "StatusPolicy(" + strconv.Itoa(int(p)) + ")"
}

// norm maps unknown policy values to PolicySeed.
func (p StatusPolicy) norm() StatusPolicy {
	if p > PolicyStatusCodes {
		return PolicySeed
	}
	return p
}

// Status returns the HTTP status code a refusal with code gets under p.
//
//	code                                          PolicySeed  PolicyStatusCodes
//	token_missing                                 402         403
//	invalid-token codes (token_malformed,         402         401
//	  signature_invalid, token_expired, ...,
//	  issuer_untrusted, *_mismatch,
//	  type_not_accepted, key_unknown)
//	identity_required, identity_fields_missing,   402         403
//	  pay_required
//	amount_insufficient, token_depleted           402         402
//	charge_declined                               402         402
//	charge_unknown                                502         502
//	keys_unavailable, charge_unavailable          503         503
//	internal_error (and the empty code)           500         500
//	any other (future) code                       402         403
//
// Unknown policy values behave as PolicySeed.
func (p StatusPolicy) Status(code kyapay.Code) int {
	return p.norm().status(classify(code))
}

func (p StatusPolicy) status(c refusalClass) int {
	switch c {
	case classUnavailable:
		return http.StatusServiceUnavailable
	case classChargeUnknown:
		return http.StatusBadGateway
	case classInternal:
		return http.StatusInternalServerError
	}
	if p != PolicyStatusCodes {
		return http.StatusPaymentRequired
	}
	switch c {
	case classMissing, classIdentity, classIdentityFields, classPayRequired:
		return http.StatusForbidden
	case classInvalid:
		return http.StatusUnauthorized
	case classInsufficient, classDeclined:
		return http.StatusPaymentRequired
	}
	return http.StatusForbidden
}

// refusalClass groups codes that share a status and a text.
type refusalClass uint8

const (
	classOther refusalClass = iota
	classMissing
	classInvalid
	classIdentity
	classIdentityFields
	classPayRequired
	classInsufficient
	classDeclined
	classChargeUnknown
	classUnavailable
	classInternal
)

func classify(code kyapay.Code) refusalClass {
	switch code {
	case kyapay.CodeTokenMissing:
		return classMissing
	case kyapay.CodeTokenTooLarge, kyapay.CodeTokenMalformed, kyapay.CodeAlgorithmNotAllowed,
		kyapay.CodeHeaderNotAllowed, kyapay.CodeConfirmationNotSupported, kyapay.CodeSignatureInvalid,
		kyapay.CodeTokenExpired, kyapay.CodeTokenNotYetValid, kyapay.CodeClaimMissing,
		kyapay.CodeClaimInvalid, kyapay.CodeIssuerUntrusted, kyapay.CodeAudienceMismatch,
		kyapay.CodeServiceMismatch, kyapay.CodeEnvMismatch, kyapay.CodeTypeNotAccepted,
		kyapay.CodeKeyUnknown, kyapay.CodeTokenAmbiguous:
		return classInvalid
	case kyapay.CodeIdentityRequired:
		return classIdentity
	case kyapay.CodeIdentityFieldsMissing:
		return classIdentityFields
	case kyapay.CodePayRequired:
		return classPayRequired
	case kyapay.CodeAmountInsufficient, kyapay.CodeTokenDepleted:
		return classInsufficient
	case kyapay.CodeChargeDeclined:
		return classDeclined
	case kyapay.CodeChargeUnknown, kyapay.CodeChargeMismatch:
		return classChargeUnknown
	case kyapay.CodeKeysUnavailable, kyapay.CodeChargeUnavailable:
		return classUnavailable
	case kyapay.CodeInternal, "":
		return classInternal
	}
	return classOther
}

// textClass is the class that decides the wording: a charge_declined error
// caused by an insufficient balance reads like a depleted token, and a
// missing token on a route that only accepts chargeable tokens reads like
// Skyfire's "pay token is missing" text, which states the required amount.
func textClass(ref *Refusal) refusalClass {
	c := classify(ref.Err.Code)
	switch {
	case c == classDeclined && declinedForBalance(ref.Err):
		return classInsufficient
	case c == classMissing && ref.Accepted&kyapay.TypeKYA == 0 && ref.Accepted&kyapay.AnyType != 0:
		return classPayRequired
	}
	return c
}

// declinedForBalance reports whether a charge_declined error is about the
// token's balance: either its cause chain matches
// charge.ErrInsufficientBalance or holds a token_depleted or
// amount_insufficient *kyapay.Error, or its caller-safe message mentions
// the balance ("balance", "insufficient", "depleted").
func declinedForBalance(e *kyapay.Error) bool {
	if e.Err != nil && (errors.Is(e.Err, charge.ErrInsufficientBalance) ||
		errors.Is(e.Err, kyapay.ErrTokenDepleted) || errors.Is(e.Err, kyapay.ErrAmountInsufficient)) {
		return true
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "balance") || strings.Contains(m, "insufficient") || strings.Contains(m, "depleted")
}

// Per type-set spellings, indexed by the TokenTypes mask (0..7); index 0 is
// filled like AnyType.
var (
	// seedTypeList: "kya | pay | kya+pay", as in Skyfire's seed text.
	seedTypeList [8]string
	// typeWords: "KYA, Pay or KYA-Pay", as in the newer guidance.
	typeWords [8]string
	// jsonTypes: ["kya","pay","kya-pay"], Skyfire's API names.
	jsonTypes [8][]string
)

func init() {
	seed := [3]string{"kya", "pay", "kya+pay"}
	words := [3]string{"KYA", "Pay", "KYA-Pay"}
	api := [3]string{"kya", "pay", "kya-pay"}
	for m := 0; m < 8; m++ {
		mask := m
		if mask == 0 {
			mask = int(kyapay.AnyType)
		}
		var s, w, a []string
		for i := 0; i < 3; i++ {
			if mask&(1<<i) != 0 {
				s, w, a = append(s, seed[i]), append(w, words[i]), append(a, api[i])
			}
		}
		seedTypeList[m] = strings.Join(s, " | ")
		if len(w) == 1 {
			typeWords[m] = w[0]
		} else {
			typeWords[m] = strings.Join(w[:len(w)-1], ", ") + " or " + w[len(w)-1]
		}
		jsonTypes[m] = a
	}
}

// acceptedMask returns the accepted set as an index into the tables above.
func acceptedMask(t kyapay.TokenTypes) int { return int(t & kyapay.AnyType) }

// payMask is the payment-capable part of an accepted set (pay and kya-pay
// when the set has none).
func payMask(t kyapay.TokenTypes) int {
	m := t & (kyapay.TypePay | kyapay.TypeKYAPay)
	if m == 0 {
		m = kyapay.TypePay | kyapay.TypeKYAPay
	}
	return int(m)
}

// payWord names the token to create when a payment token is missing or
// depleted: "pay" when the route takes pay tokens (the seed's wording), else
// the only payment type it takes, in the given spelling of kya-pay.
func payWord(t kyapay.TokenTypes, kyaPay string) string {
	if payMask(t)&int(kyapay.TypePay) != 0 {
		return "pay"
	}
	return kyaPay
}

// identityFieldsPrefix is the message prefix under which the middleware
// lists the identity fields a token lacks: "missing identity fields: email,
// given_name".
const identityFieldsPrefix = "missing identity fields:"

// RefusalMessage returns the caller-facing text for ref under policy: the
// plain-text body, and the message of the JSON body.
//
// Under PolicySeed the texts are Skyfire's recommended ones, word for word
// when the route accepts every token type ("kya | pay | kya+pay") and costs
// 0.01 USD:
//
//   - token_missing, every invalid-token code, identity_required:
//     "ERROR: Missing KYAPay token in the skyfire-pay-id header. Please
//     create an account at https://app.skyfire.xyz and create a kya | pay |
//     kya+pay token - https://docs.skyfire.xyz/reference/create-token and
//     include it in your request in the skyfire-pay-id header."
//     identity_fields_missing adds one sentence: "The token must carry these
//     identity fields: email, given_name." when Err.Message is
//     "missing identity fields: email, given_name", or the message itself,
//     sentence-cased, otherwise.
//   - pay_required: "ERROR: Missing pay token in the skyfire-pay-id header.
//     Please create an account at https://app.skyfire.xyz and create a pay
//     token - https://docs.skyfire.xyz/reference/create-token and include it
//     in your request in the skyfire-pay-id header. The required amount is
//     0.01 USD."
//   - token_depleted, amount_insufficient, and charge_declined for lack of
//     balance: "ERROR: The given pay token is depleted. Please create and
//     send a new pay token. The required amount is 0.01 USD."
//   - charge_declined (other reasons), charge_unknown, charge_unavailable,
//     keys_unavailable, internal_error and unknown codes: "ERROR: " followed
//     by Err.Message.
//
// The header name comes from ref.Header (default skyfire-pay-id), the type
// list from ref.Accepted; "The required amount is ..." is left out when
// ref.HasPrice is false. A route that takes kya-pay but not pay tokens reads
// "kya+pay token" where the seed says "pay token".
//
// Under PolicyStatusCodes the texts follow the newer guidance and name the
// accepted types: "Missing KYA or KYA-Pay token in the skyfire-pay-id
// header.", "Invalid Pay or KYA-Pay token in the skyfire-pay-id header.
// Token has expired.", each followed by the same create-token sentence, and
// "The balance on the given 'pay' token is not enough. Please create and
// send a new pay token. The required amount is 0.01 USD."; other codes give
// Err.Message sentence-cased.
//
// Whatever the policy, the charge_unknown text always tells the agent not to
// pay again. Only Err.Message, which is caller-safe, is ever quoted; Err.Err
// never is. A nil ref or a nil ref.Err reads as internal_error.
func RefusalMessage(ref *Refusal, policy StatusPolicy) string {
	n := normalize(ref)
	return refusalMessage(&n, policy.norm())
}

// normalize returns a copy of ref with defaults filled in.
func normalize(ref *Refusal) Refusal {
	var n Refusal
	if ref != nil {
		n = *ref
	}
	if n.Err == nil {
		n.Err = kyapay.NewError(kyapay.CodeInternal, "", nil)
	} else if n.Err.Message == "" || n.Err.Code == "" {
		e := *n.Err
		if e.Code == "" {
			e.Code = kyapay.CodeInternal
		}
		if e.Message == "" {
			e.Message = kyapay.DefaultMessage(e.Code)
		}
		n.Err = &e
	}
	if n.Header == "" {
		n.Header = kyapay.HeaderName
	}
	if n.SignupURL == "" {
		n.SignupURL = DefaultSignupURL
	}
	if n.Accepted&kyapay.AnyType == 0 {
		n.Accepted = kyapay.AnyType
	}
	return n
}

func refusalMessage(ref *Refusal, policy StatusPolicy) string {
	var b strings.Builder
	b.Grow(320)
	c := textClass(ref)
	if policy == PolicyStatusCodes {
		writeStatusCodesText(&b, ref, c)
	} else {
		writeSeedText(&b, ref, c)
	}
	return b.String()
}

// writeGuidance writes the create-token sentence of the seed texts.
func writeGuidance(b *strings.Builder, signup, header, types string) {
	b.WriteString("Please create an account at ")
	b.WriteString(signup)
	b.WriteString(" and create a ")
	b.WriteString(types)
	b.WriteString(" token - ")
	b.WriteString(DefaultCreateTokenURL)
	b.WriteString(" and include it in your request in the ")
	b.WriteString(header)
	b.WriteString(" header.")
}

// writeAmount writes " The required amount is X USD." when the price is
// known.
func writeAmount(b *strings.Builder, ref *Refusal) {
	if !ref.HasPrice {
		return
	}
	b.WriteString(" The required amount is ")
	b.WriteString(ref.Price.String())
	b.WriteString(" USD.")
}

// writeIdentityFields writes the sentence that names the missing identity
// fields, with a leading space.
func writeIdentityFields(b *strings.Builder, msg string) {
	b.WriteByte(' ')
	if rest, ok := strings.CutPrefix(msg, identityFieldsPrefix); ok {
		if list := strings.TrimRight(strings.TrimSpace(rest), "."); list != "" {
			b.WriteString("The token must carry these identity fields: ")
			b.WriteString(list)
			b.WriteByte('.')
			return
		}
	}
	writeSentence(b, msg)
}

func writeSeedText(b *strings.Builder, ref *Refusal, c refusalClass) {
	h := ref.Header
	switch c {
	case classMissing, classIdentity, classIdentityFields:
		b.WriteString("ERROR: Missing KYAPay token in the ")
		b.WriteString(h)
		b.WriteString(" header. ")
		writeGuidance(b, ref.SignupURL, h, seedTypeList[acceptedMask(ref.Accepted)])
		if c == classIdentityFields {
			writeIdentityFields(b, ref.Err.Message)
		}
	case classInvalid:
		// The seed gives no text for a token that is present but invalid;
		// say so, with the reason, in the seed's shape.
		b.WriteString("ERROR: Invalid KYAPay token in the ")
		b.WriteString(h)
		b.WriteString(" header. ")
		writeSentence(b, ref.Err.Message)
		b.WriteByte(' ')
		writeGuidance(b, ref.SignupURL, h, seedTypeList[acceptedMask(ref.Accepted)])
	case classPayRequired:
		w := payWord(ref.Accepted, "kya+pay")
		b.WriteString("ERROR: Missing ")
		b.WriteString(w)
		b.WriteString(" token in the ")
		b.WriteString(h)
		b.WriteString(" header. ")
		writeGuidance(b, ref.SignupURL, h, w)
		writeAmount(b, ref)
	case classInsufficient:
		w := payWord(ref.Accepted, "kya+pay")
		b.WriteString("ERROR: The given ")
		b.WriteString(w)
		b.WriteString(" token is depleted. Please create and send a new ")
		b.WriteString(w)
		b.WriteString(" token.")
		writeAmount(b, ref)
	default:
		b.WriteString("ERROR: ")
		b.WriteString(ref.Err.Message)
		if c == classChargeUnknown {
			writeDoNotPayAgain(b, ref.Err.Message)
		}
	}
}

func writeStatusCodesText(b *strings.Builder, ref *Refusal, c refusalClass) {
	h := ref.Header
	switch c {
	case classMissing, classIdentity, classIdentityFields:
		words := typeWords[acceptedMask(ref.Accepted)]
		b.WriteString("Missing ")
		b.WriteString(words)
		b.WriteString(" token in the ")
		b.WriteString(h)
		b.WriteString(" header.")
		if c == classIdentityFields {
			writeIdentityFields(b, ref.Err.Message)
		}
		b.WriteByte(' ')
		writeGuidance(b, ref.SignupURL, h, words)
	case classInvalid:
		words := typeWords[acceptedMask(ref.Accepted)]
		b.WriteString("Invalid ")
		b.WriteString(words)
		b.WriteString(" token in the ")
		b.WriteString(h)
		b.WriteString(" header. ")
		writeSentence(b, ref.Err.Message)
		b.WriteByte(' ')
		writeGuidance(b, ref.SignupURL, h, words)
	case classPayRequired:
		words := typeWords[payMask(ref.Accepted)]
		b.WriteString("Missing ")
		b.WriteString(words)
		b.WriteString(" token in the ")
		b.WriteString(h)
		b.WriteString(" header. ")
		writeGuidance(b, ref.SignupURL, h, words)
		writeAmount(b, ref)
	case classInsufficient:
		w := payWord(ref.Accepted, "kya-pay")
		b.WriteString("The balance on the given '")
		b.WriteString(w)
		b.WriteString("' token is not enough. Please create and send a new ")
		b.WriteString(w)
		b.WriteString(" token.")
		writeAmount(b, ref)
	default:
		writeSentence(b, ref.Err.Message)
		if c == classChargeUnknown {
			writeDoNotPayAgain(b, ref.Err.Message)
		}
	}
}

// writeDoNotPayAgain makes sure a charge_unknown text tells the agent not to
// pay again, whatever message the charge client chose.
func writeDoNotPayAgain(b *strings.Builder, msg string) {
	if strings.Contains(strings.ToLower(msg), "not pay again") {
		return
	}
	if !endsSentence(msg) {
		b.WriteByte('.')
	}
	b.WriteString(" Do not pay again: the charge may have gone through; retry later with the same token.")
}

// writeSentence writes msg with its first letter upper-cased and a final
// period if it has no closing punctuation.
func writeSentence(b *strings.Builder, msg string) {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return
	}
	r, size := utf8.DecodeRuneInString(msg)
	if unicode.IsLower(r) {
		b.WriteRune(unicode.ToUpper(r))
		b.WriteString(msg[size:])
	} else {
		b.WriteString(msg)
	}
	if !endsSentence(msg) {
		b.WriteByte('.')
	}
}

func endsSentence(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	switch s[len(s)-1] {
	case '.', '!', '?':
		return true
	}
	return false
}

// DefaultErrorHandler returns the [ErrorHandler] that renders refusals under
// policy. It reaches the [*Refusal] in err with errors.As; an error that
// holds only a *kyapay.Error is answered as if the route accepted any token
// type at no known price, and any other error as internal_error (its text
// is never shown).
//
// The status comes from [StatusPolicy.Status] and the text from
// [RefusalMessage]. The body is plain text (text/plain; charset=utf-8)
// unless JSON is wanted: the route's Format is [FormatJSON], or it is
// [FormatAuto] and either the Accept header ranks application/json above
// text/plain by q-value (a bare */* means text), or the request is a POST
// with a JSON content type whose body is a JSON-RPC 2.0 message. The JSON
// body is an MCP CallToolResult:
//
//	{"content":[{"type":"text","text":MSG}],"isError":true,
//	 "structuredContent":{"error":CODE,"message":MSG,
//	   "acceptedTokenTypes":["kya","pay","kya-pay"],
//	   "requiredAmount":"0.01","currency":"USD",
//	   "header":"skyfire-pay-id",
//	   "createTokenUrl":"https://docs.skyfire.xyz/reference/create-token"}}
//
// with requiredAmount and currency only when the price is known. When the
// body was a JSON-RPC request with a string or number id, the result is
// wrapped: {"jsonrpc":"2.0","id":ID,"result":...}. The HTTP status is the
// same in both formats.
//
// To recognise JSON-RPC the handler reads at most 1 MiB of the request body,
// only on this refusal path and only for POST requests with a JSON content
// type on routes that may answer in JSON; it leaves the body consumed.
//
// Every refusal carries Cache-Control: no-store, X-Content-Type-Options:
// nosniff and Content-Length; 503 refusals also carry Retry-After: 5. The
// handler is safe for concurrent use.
func DefaultErrorHandler(policy StatusPolicy) ErrorHandler {
	policy = policy.norm()
	return func(w http.ResponseWriter, r *http.Request, err error) {
		ref := refusalFrom(err)
		writeRefusal(w, r, &ref, policy)
	}
}

// refusalFrom extracts a normalised Refusal from any error.
func refusalFrom(err error) Refusal {
	var ref *Refusal
	if errors.As(err, &ref) && ref != nil {
		return normalize(ref)
	}
	var ke *kyapay.Error
	if errors.As(err, &ke) && ke != nil {
		return normalize(&Refusal{Err: ke})
	}
	return normalize(nil)
}

func writeRefusal(w http.ResponseWriter, r *http.Request, ref *Refusal, policy StatusPolicy) {
	status := policy.status(classify(ref.Err.Code))
	msg := refusalMessage(ref, policy)

	h := w.Header()
	if status == http.StatusServiceUnavailable {
		if ref.RetryAfter > 0 {
			h.Set("Retry-After", strconv.FormatInt(int64((ref.RetryAfter+time.Second-1)/time.Second), 10))
		} else {
			h.Set("Retry-After", retryAfterSeconds)
		}
	} else {
		h.Del("Retry-After")
	}
	d := refusalDetail(ref, msg)
	writeAnswer(w, r, ref.Format, status, msg, &d)
}

// writeAnswer writes a refusal-like answer: msg as plain text, or, when
// the caller wants JSON ([wantsJSON]), an MCP CallToolResult with isError,
// msg as its text content and structured as its structuredContent, wrapped
// in a JSON-RPC response when the request was one. The answer is never
// cached. Headers the caller set (Retry-After, the code) are kept.
func writeAnswer(w http.ResponseWriter, r *http.Request, format Format, status int, msg string, structured any) {
	asJSON, rpcID := wantsJSON(r, format)
	var body []byte
	h := w.Header()
	if asJSON {
		body = toolResultJSON(msg, structured, rpcID)
		h.Set("Content-Type", "application/json")
	} else {
		body = []byte(msg)
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if format == FormatAuto {
		h.Add("Vary", "Accept")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// MCP CallToolResult shapes.
type (
	toolResult struct {
		Content           []textContent `json:"content"`
		IsError           bool          `json:"isError"`
		StructuredContent any           `json:"structuredContent"`
	}
	textContent struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	rpcResponse struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  *toolResult     `json:"result"`
	}
)

// refusalDetail is the machine-readable description of a normalised
// refusal whose caller-facing text is msg.
func refusalDetail(ref *Refusal, msg string) RefusalDetail {
	d := RefusalDetail{
		Error:              ref.Err.Code,
		Message:            msg,
		AcceptedTokenTypes: append([]string(nil), jsonTypes[acceptedMask(ref.Accepted)]...),
		Header:             ref.Header,
		CreateTokenURL:     DefaultCreateTokenURL,
	}
	if ref.HasPrice {
		d.RequiredAmount, d.Currency = ref.Price.String(), "USD"
	}
	return d
}

// toolResultJSON encodes an MCP CallToolResult with isError set, msg as its
// text content and structured as its structuredContent, wrapped in a
// JSON-RPC response when rpcID is not nil.
func toolResultJSON(msg string, structured any, rpcID json.RawMessage) []byte {
	res := &toolResult{
		Content:           []textContent{{Type: "text", Text: msg}},
		IsError:           true,
		StructuredContent: structured,
	}
	var v any = res
	if rpcID != nil {
		v = &rpcResponse{JSONRPC: "2.0", ID: rpcID, Result: res}
	}
	body, err := json.Marshal(v)
	if err != nil {
		// Unreachable: every field is a plain string, number, bool or a
		// validated raw id. Fall back to a fixed, valid body.
		return []byte(`{"content":[{"type":"text","text":"ERROR: internal error"}],"isError":true}`)
	}
	return body
}

// wantsJSON decides the body format of a refusal on a route with the given
// Format, and returns the JSON-RPC id to echo when the body was a JSON-RPC
// request with a string or number id (nil otherwise). It reads the request
// body only when the answer may be JSON and the request is a POST with a
// JSON content type.
func wantsJSON(r *http.Request, format Format) (bool, json.RawMessage) {
	if format == FormatText {
		return false, nil
	}
	isRPC, id := jsonRPC(r)
	if format == FormatJSON || isRPC {
		return true, id
	}
	return acceptPrefersJSON(r.Header.Values("Accept")), nil
}

// jsonRPC reports whether r is a POST with a JSON content type whose body is
// a JSON-RPC 2.0 message, and returns its id when it is a request with a
// string or number id.
func jsonRPC(r *http.Request) (bool, json.RawMessage) {
	if r.Method != http.MethodPost || r.Body == nil || !isJSONContentType(r.Header.Get("Content-Type")) {
		return false, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRPCBody+1))
	if err != nil || len(data) > maxRPCBody {
		return false, nil
	}
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		ID      json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(data, &msg); err != nil || msg.JSONRPC != "2.0" {
		return false, nil
	}
	if msg.Method == "" || len(msg.ID) == 0 {
		return true, nil
	}
	switch c := msg.ID[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true, msg.ID
	}
	return true, nil // null, or an id of a type JSON-RPC does not allow
}

// isJSONContentType reports whether a Content-Type value is application/json
// or a +json type.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || (strings.HasSuffix(mt, "+json") && strings.Contains(mt, "/"))
}

// acceptPrefersJSON reports whether the Accept header values give
// application/json a higher q-value than text/plain. Each of the two types
// takes the q of the most specific range that matches it (type/subtype,
// then type/*, then */*; the highest q among equally specific ranges).
// Ranges with a malformed q are ignored. No Accept header, a bare */*, or
// equal q-values mean text.
func acceptPrefersJSON(values []string) bool {
	jsonQ, textQ := 0.0, 0.0
	jsonSpec, textSpec := -1, -1
	for _, v := range values {
		for len(v) > 0 {
			var part string
			part, v, _ = strings.Cut(v, ",")
			typ, sub, q, ok := parseMediaRange(part)
			if !ok {
				continue
			}
			if s := specificity(typ, sub, "application", "json"); s > jsonSpec || (s == jsonSpec && s >= 0 && q > jsonQ) {
				jsonSpec, jsonQ = s, q
			}
			if s := specificity(typ, sub, "text", "plain"); s > textSpec || (s == textSpec && s >= 0 && q > textQ) {
				textSpec, textQ = s, q
			}
		}
	}
	return jsonQ > textQ
}

// parseMediaRange parses one Accept element into lower-cased type and
// subtype and its q-value (default 1).
func parseMediaRange(part string) (typ, sub string, q float64, ok bool) {
	mr, params, _ := strings.Cut(part, ";")
	typ, sub, ok = strings.Cut(strings.TrimSpace(mr), "/")
	if !ok || !isToken(typ) || !isToken(sub) || (typ == "*" && sub != "*") {
		return "", "", 0, false
	}
	typ, sub = strings.ToLower(typ), strings.ToLower(sub)
	q = 1
	for len(params) > 0 {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return "", "", 0, false
		}
		q = f
		break // parameters after q are accept-ext, not media-type parameters
	}
	return typ, sub, q, true
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// specificity returns how specifically the range typ/sub matches
// wantType/wantSub: 2 exact, 1 type/*, 0 */*, -1 no match.
func specificity(typ, sub, wantType, wantSub string) int {
	switch {
	case typ == wantType && sub == wantSub:
		return 2
	case typ == wantType && sub == "*":
		return 1
	case typ == "*" && sub == "*":
		return 0
	}
	return -1
}
