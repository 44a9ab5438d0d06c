package kyapaymcpgo

// This file is the same in kyapaymcp and kyapaymcpgo but for its package
// clause: the two MCP front ends take the same configuration, find the
// token in the same places and describe tools, refusals and receipts in
// the same words and shapes. TestCommonFileMatchesTwin compares the two
// copies and TestToolTexts pins the texts.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Where the token travels and where the gate writes what it advertises.
const (
	// DefaultArgument is the tool argument that carries the token unless
	// [Config.Argument] names another: the name Skyfire's buyer agents use.
	DefaultArgument = "skyfire-pay-id"
	// DefaultMetaKey is the key of a tools/call request's _meta that
	// carries the token unless [Config.MetaKey] names another
	// (params._meta["xyz.skyfire/pay-id"]). The gate also accepts the token
	// under the name of the Middleware's header (_meta["skyfire-pay-id"]).
	DefaultMetaKey = "xyz.skyfire/pay-id"
	// ToolMetaKey is the key of the *[ToolInfo] the gate adds to the _meta
	// of every gated tool in tools/list.
	ToolMetaKey = "xyz.skyfire/kyapay"
	// ReceiptMetaKey is the key of the *[Receipt] the gate adds to the
	// _meta of the result of every charged call.
	ReceiptMetaKey = "xyz.skyfire/receipt"
)

// Requirement is what one tool demands of the caller's token: a
// [middleware.Requirement] (types, identity fields, price) and when a paid
// tool charges.
//
// A paid MCP tool charges after it succeeded unless ChargeBefore is set.
// The embedded Requirement's Timing is not read, because its zero value,
// middleware.ChargeBefore, cannot be told from "not set"; setting it to
// middleware.ChargeAfter together with ChargeBefore is an error. Prices are
// [middleware.FixedPrice], [middleware.ContextPrice] (the context carries
// the call: RequestFromContext) or [middleware.ServicePrice];
// [middleware.PriceFunc] needs an HTTP request and is refused.
type Requirement struct {
	middleware.Requirement
	// ChargeBefore charges the token before the tool runs, as
	// middleware.ChargeBefore does for HTTP routes: the tool runs only once
	// Skyfire confirmed the charge, can read the receipt
	// ([middleware.ReceiptFromContext]), and the charge stands whatever the
	// tool returns. Only a priced tool may set it. Default (false): the
	// tool runs first and only a final, successful result is charged.
	ChargeBefore bool
}

// Config configures a [Gate].
type Config struct {
	// Tools maps the names of the tools the installed gate sells to their
	// requirements; a requirement's Name defaults to the tool name. Tools
	// not listed are free and left alone. A tool registered through the
	// per-tool form, with its own requirement, must not be listed here.
	Tools map[string]Requirement
	// Argument is the tool argument that carries the token. Default:
	// DefaultArgument ("skyfire-pay-id"). The gate removes it from the
	// arguments of every gated call, so a gated tool must not have an
	// argument of its own with this name.
	Argument string
	// MetaKey is the key of the request's _meta that carries the token.
	// Default: DefaultMetaKey ("xyz.skyfire/pay-id").
	MetaKey string
}

// New returns a Gate that verifies, prices and charges with m, as m does
// for HTTP routes: its Verifier, Charger, Policy, Logger, OnCharged hook,
// Header and SignupURL apply to tool calls too. It reports an invalid
// configuration: a nil m, a tool requirement m refuses (see
// [middleware.Middleware.Route]), a [middleware.PriceFunc] price (which
// needs an HTTP request; use [middleware.ContextPrice]), ChargeBefore on a
// tool without a price or together with Timing middleware.ChargeAfter, an
// empty tool name, or an invalid argument name or _meta key.
//
// A Gate is safe for concurrent use.
func New(m *middleware.Middleware, cfg Config) (*Gate, error) {
	g := &Gate{}
	if err := g.init(m, cfg); err != nil {
		return nil, err
	}
	return g, nil
}

// Argument returns the name of the tool argument that carries the token.
func (g *Gate) Argument() string { return g.arg }

// MetaKey returns the key of the request _meta that carries the token.
func (g *Gate) MetaKey() string { return g.metaKey }

// common is what a Gate derives from its Middleware and Config.
type common struct {
	m         *middleware.Middleware
	arg       string
	metaKey   string
	header    string // the Middleware's token header
	signupURL string
	places    [4]string        // where a token may be, for refusal texts
	tools     map[string]*tool // Config.Tools; read-only after init
}

// tool is a compiled tool requirement.
type tool struct {
	name  string
	route *middleware.Route
	// before: the tool charges before it runs.
	before bool
	info   *ToolInfo
	// argDesc is the description of the token argument's schema property,
	// descLine the line added to the tool's description.
	argDesc  string
	descLine string
}

func (c *common) init(m *middleware.Middleware, cfg Config) error {
	if m == nil {
		return errors.New(pkgName + ": nil *middleware.Middleware")
	}
	c.m, c.arg, c.metaKey = m, cfg.Argument, cfg.MetaKey
	if c.arg == "" {
		c.arg = DefaultArgument
	}
	if c.metaKey == "" {
		c.metaKey = DefaultMetaKey
	}
	if !validName(c.arg, false) {
		return fmt.Errorf("%s: invalid argument name %q (use letters, digits, '_', '-' and '.')", pkgName, c.arg)
	}
	if !validName(c.metaKey, true) {
		return fmt.Errorf("%s: invalid _meta key %q (use letters, digits, '_', '-', '.' and '/')", pkgName, c.metaKey)
	}
	c.header, c.signupURL = m.Header(), m.SignupURL()
	c.initPlaces()
	c.tools = make(map[string]*tool, len(cfg.Tools))
	for _, name := range slices.Sorted(maps.Keys(cfg.Tools)) { // the same first error every time
		t, err := c.compile(name, cfg.Tools[name])
		if err != nil {
			return err
		}
		c.tools[name] = t
	}
	return nil
}

// Indexes of common.places, the names of the places a token may be in.
const (
	placeHeader     = iota // the header
	placeMeta              // _meta[metaKey]
	placeMetaHeader        // _meta[header name]
	placeArgument          // the tool argument
)

func (c *common) initPlaces() {
	c.places = [4]string{
		"the " + c.header + " header",
		`_meta["` + c.metaKey + `"]`,
		`_meta["` + c.header + `"]`,
		"the " + c.arg + " argument",
	}
}

// validName reports whether s may name the token argument (or, with
// slash, the _meta key).
func validName(s string, slash bool) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || slash && c == '/') {
			return false
		}
	}
	return true
}

// compile validates one tool requirement.
func (c *common) compile(name string, req Requirement) (*tool, error) {
	if name == "" {
		return nil, errors.New(pkgName + ": empty tool name")
	}
	if req.ChargeBefore && req.Timing == middleware.ChargeAfter {
		return nil, fmt.Errorf("%s: tool %q: ChargeBefore set with Timing middleware.ChargeAfter", pkgName, name)
	}
	if req.Price.NeedsRequest() {
		return nil, fmt.Errorf("%s: tool %q: middleware.PriceFunc needs an HTTP request, which a tool call does not have; use middleware.ContextPrice", pkgName, name)
	}
	r := req.Requirement
	r.Timing = middleware.ChargeAfter
	if req.ChargeBefore {
		r.Timing = middleware.ChargeBefore
	}
	if r.Name == "" {
		r.Name = name
	}
	rt, err := c.m.Route(r)
	if err != nil {
		return nil, fmt.Errorf("%s: tool %q: %w", pkgName, name, err)
	}
	if req.ChargeBefore && !rt.Paid() {
		return nil, fmt.Errorf("%s: tool %q: ChargeBefore set on a tool without a price", pkgName, name)
	}
	t := &tool{name: name, route: rt, before: req.ChargeBefore}
	t.info = c.toolInfo(t)
	t.argDesc, t.descLine = c.argumentText(t.info), descriptionLine(t.info)
	return t, nil
}

// ToolInfo is the [ToolMetaKey] entry of a gated tool's _meta in
// tools/list: what the tool demands, for programs (a model reads the
// argument's description instead). In JSON:
//
//	"xyz.skyfire/kyapay": {
//	  "acceptedTokenTypes": ["pay", "kya-pay"], "paid": true,
//	  "requiredAmount": "0.01", "currency": "USD", "chargeTiming": "after",
//	  "argument": "skyfire-pay-id", "header": "skyfire-pay-id",
//	  "metaKey": "xyz.skyfire/pay-id",
//	  "createTokenUrl": "https://docs.skyfire.xyz/reference/create-token"
//	}
type ToolInfo struct {
	// AcceptedTokenTypes lists the accepted token types: "kya", "pay",
	// "kya-pay".
	AcceptedTokenTypes []string `json:"acceptedTokenTypes"`
	// IdentityFields lists the hid fields the token must carry.
	IdentityFields []string `json:"identityFields,omitempty"`
	// Paid reports whether calls are charged.
	Paid bool `json:"paid"`
	// RequiredAmount and Currency state a fixed price per call; they are
	// absent when the price is set per call ([middleware.ContextPrice]) or
	// by the Skyfire service ([middleware.ServicePrice]).
	RequiredAmount string `json:"requiredAmount,omitempty"`
	Currency       string `json:"currency,omitempty"`
	// ChargeTiming is when a paid call is charged: "after" (only a final,
	// successful result) or "before" (before the tool runs).
	ChargeTiming string `json:"chargeTiming,omitempty"`
	// Argument, Header and MetaKey are where the token may travel: the
	// tool argument, the HTTP header, the request _meta key.
	Argument string `json:"argument"`
	Header   string `json:"header"`
	MetaKey  string `json:"metaKey"`
	// CreateTokenURL documents how to create a token.
	CreateTokenURL string `json:"createTokenUrl"`

	// tool is the compiled tool this entry describes, and names its gate.
	tool  *tool
	owner *common
}

func (c *common) toolInfo(t *tool) *ToolInfo {
	rt := t.route
	info := &ToolInfo{
		AcceptedTokenTypes: typeList(rt.Accepted()),
		IdentityFields:     rt.IdentityFields(),
		Paid:               rt.Paid(),
		Argument:           c.arg,
		Header:             c.header,
		MetaKey:            c.metaKey,
		CreateTokenURL:     middleware.DefaultCreateTokenURL,
		tool:               t,
		owner:              c,
	}
	if info.Paid {
		info.ChargeTiming = rt.Timing().String()
		if p, ok := rt.FixedPrice(); ok {
			info.RequiredAmount, info.Currency = p.String(), "USD"
		}
	}
	return info
}

// argumentText is the description of the token argument, for a model:
// what to pass, what it costs, where to get one, where else it may go.
func (c *common) argumentText(info *ToolInfo) string {
	var b strings.Builder
	b.WriteString("Skyfire KYAPay token for this tool: a ")
	b.WriteString(orList(info.AcceptedTokenTypes))
	b.WriteString(` token, the JWT itself (it starts with "ey"), not its ID.`)
	if info.Paid {
		b.WriteString(" Each call ")
		if info.RequiredAmount != "" {
			b.WriteString("costs " + info.RequiredAmount + " USD")
		} else {
			b.WriteString("has a price set per call")
		}
		b.WriteString(", " + chargeWhen(info) + ".")
	} else {
		b.WriteString(" Calls are not charged.")
	}
	b.WriteString(identityText(info))
	b.WriteString(" Create one with Skyfire (" + info.CreateTokenURL + "; account at " + c.signupURL + ").")
	b.WriteString(" Clients may send it in the " + c.header + ` HTTP header or in _meta["` + c.metaKey + `"] instead.`)
	return b.String()
}

// descriptionLine is the line added to a gated tool's description, for
// models that read descriptions only.
func descriptionLine(info *ToolInfo) string {
	var b strings.Builder
	if info.Paid {
		b.WriteString("Paid tool: ")
		if info.RequiredAmount != "" {
			b.WriteString(info.RequiredAmount + " USD per call")
		} else {
			b.WriteString("priced per call")
		}
		b.WriteString(", " + chargeWhen(info) + ". Pass a Skyfire KYAPay token (")
	} else {
		b.WriteString("Requires a Skyfire KYAPay token (")
	}
	b.WriteString(orList(info.AcceptedTokenTypes) + `) in the "` + info.Argument + `" argument.`)
	b.WriteString(identityText(info))
	return b.String()
}

func chargeWhen(info *ToolInfo) string {
	if info.ChargeTiming == middleware.ChargeBefore.String() {
		return "charged before the tool runs"
	}
	return "charged only when the call succeeds"
}

func identityText(info *ToolInfo) string {
	if len(info.IdentityFields) == 0 {
		return ""
	}
	return " The token must carry these identity fields: " + strings.Join(info.IdentityFields, ", ") + "."
}

// typeList is the accepted types as Skyfire's API names them.
func typeList(t kyapay.TokenTypes) []string {
	var out []string
	for _, one := range []kyapay.TokenType{kyapay.TypeKYA, kyapay.TypePay, kyapay.TypeKYAPay} {
		if t&one != 0 {
			out = append(out, one.String())
		}
	}
	return out
}

// orList joins words for a sentence: "kya, pay or kya-pay".
func orList(l []string) string {
	if len(l) <= 1 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// refusalDetail describes a refusal from the gate for a tool error
// result: the Middleware's text, followed, where a token would help, by a
// sentence naming the argument, and the machine-readable detail with the
// argument and the _meta key.
func (c *common) refusalDetail(err error) middleware.RefusalDetail {
	ref, d := c.m.Describe(err)
	d.Argument, d.MetaKey = c.arg, c.metaKey
	if tokenAdvice(ref.Code()) {
		d.Message += ` Pass the token in the "` + c.arg + `" argument of this tool.`
	}
	return d
}

// tokenAdvice reports whether a refusal with this code is cured by sending
// a (new) token, so its text says where to put it. Charge outcomes that
// must not be paid again and server-side failures are not.
func tokenAdvice(code kyapay.Code) bool {
	switch code {
	case kyapay.CodeChargeUnknown, kyapay.CodeChargeMismatch, kyapay.CodeChargeUnavailable,
		kyapay.CodeKeysUnavailable, kyapay.CodeInternal:
		return false
	}
	return true
}

// Receipt is the [ReceiptMetaKey] entry of a charged call's result _meta.
// In JSON: {"amountCharged": "0.01", "remainingBalance": "4.99"}.
type Receipt struct {
	// AmountCharged is what Skyfire charged, in USD.
	AmountCharged kyapay.Amount `json:"amountCharged"`
	// RemainingBalance is the token's balance after the charge, when
	// Skyfire reported it.
	RemainingBalance *kyapay.Amount `json:"remainingBalance,omitempty"`
}

// newReceipt is the _meta entry of a charge.
func newReceipt(rc charge.Receipt) *Receipt {
	// The receipt and its balance share one allocation.
	box := &struct {
		info    Receipt
		balance kyapay.Amount
	}{info: Receipt{AmountCharged: rc.AmountCharged}, balance: rc.RemainingBalance}
	if rc.HasRemainingBalance {
		box.info.RemainingBalance = &box.balance
	}
	return &box.info
}

// finder collects the occurrences of the token in one call, in the order
// the header, the _meta keys and the argument are read, and decides: one
// token, none, or a refusal. The same token in several places is one
// token; two different tokens are token_ambiguous, as are two header
// lines; a value that is not a string is token_malformed.
type finder struct {
	c         *common
	token     string
	first     string // where token was found
	ambiguous string // where a different token was found
	malformed string // where a value that is not a string was found
	err       error
}

// headerValues records the lines of the token header.
func (f *finder) headerValues(vals []string) {
	switch len(vals) {
	case 0:
	case 1:
		f.add(placeHeader, vals[0])
	default:
		f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous, "more than one "+f.c.header+" header", nil)
	}
}

// value records a JSON value found at place: a string is a token, null
// is none, anything else is malformed.
func (f *finder) value(place int, v any) {
	switch v := v.(type) {
	case nil:
	case string:
		f.add(place, v)
	default:
		f.notString(place)
	}
}

func (f *finder) add(place int, tok string) {
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "":
	case f.token == "":
		f.token, f.first = tok, f.c.places[place]
	case tok != f.token && f.ambiguous == "":
		f.ambiguous = f.c.places[place]
	}
}

func (f *finder) notString(place int) {
	if f.malformed == "" {
		f.malformed = f.c.places[place]
	}
}

// result is the token found, "" for none, or the refusal.
func (f *finder) result() (string, error) {
	switch {
	case f.err != nil:
	case f.malformed != "":
		f.err = kyapay.NewError(kyapay.CodeTokenMalformed, "the token in "+f.malformed+" is not a string", nil)
	case f.ambiguous != "":
		f.err = kyapay.NewError(kyapay.CodeTokenAmbiguous,
			"the request carries two different tokens, in "+f.first+" and in "+f.ambiguous, nil)
	}
	if f.err != nil {
		return "", f.err
	}
	return f.token, nil
}
