package mcpgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// Where the token travels and where a front end writes what it advertises.
const (
	// DefaultArgument is the tool argument that carries the token unless
	// [Config.Argument] names another: the name Skyfire's buyer agents use.
	DefaultArgument = "skyfire-pay-id"
	// DefaultMetaKey is the key of a tools/call request's _meta that
	// carries the token unless [Config.MetaKey] names another
	// (params._meta["xyz.skyfire/pay-id"]). The token is also accepted
	// under the name of the Middleware's header (_meta["skyfire-pay-id"]).
	DefaultMetaKey = "xyz.skyfire/pay-id"
	// ToolMetaKey is the key of the *[ToolInfo] added to the _meta of
	// every gated tool in tools/list.
	ToolMetaKey = "xyz.skyfire/kyapay"
	// ReceiptMetaKey is the key of the *[Receipt] added to the _meta of
	// the result of every charged call.
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
// the call: each front end's RequestFromContext returns it) or
// [middleware.ServicePrice]; [middleware.PriceFunc] needs an HTTP request
// and is refused.
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

// Gate is what an MCP front end derives from a [middleware.Middleware] and
// a [Config]: the compiled requirement of every listed tool, the names of
// the places the token may be in, and the texts that describe them. It
// holds no state of its own beyond that, and is safe for concurrent use.
// Build it with [New].
type Gate struct {
	m         *middleware.Middleware
	arg       string
	metaKey   string
	header    string // the Middleware's token header
	signupURL string
	places    [4]string        // where a token may be, for refusal texts
	tools     map[string]*Tool // Config.Tools; read-only after New
}

// Tool is the compiled requirement of one gated tool: what a front end
// needs to gate its calls ([Gate.Authorize]) and to advertise it in
// tools/list. It is immutable and safe for concurrent use.
type Tool struct {
	gate  *Gate
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

// New returns a Gate that verifies, prices and charges with m, as m does
// for HTTP routes: its Verifier, Charger, Policy, Logger, OnCharged hook,
// Header and SignupURL apply to tool calls too. It reports an invalid
// configuration: a nil m, a tool requirement m refuses (see
// [middleware.Middleware.Route]), a [middleware.PriceFunc] price (which
// needs an HTTP request; use [middleware.ContextPrice]), ChargeBefore on a
// tool without a price or together with Timing middleware.ChargeAfter, an
// empty tool name, or an invalid argument name or _meta key (letters,
// digits, '_', '-' and '.', and '/' in the key; at most 128 bytes).
func New(m *middleware.Middleware, cfg Config) (*Gate, error) {
	if m == nil {
		return nil, errors.New("mcpgate: nil *middleware.Middleware")
	}
	g := &Gate{m: m, arg: cfg.Argument, metaKey: cfg.MetaKey}
	if g.arg == "" {
		g.arg = DefaultArgument
	}
	if g.metaKey == "" {
		g.metaKey = DefaultMetaKey
	}
	if !validName(g.arg, false) {
		return nil, fmt.Errorf("mcpgate: invalid argument name %q (use letters, digits, '_', '-' and '.')", g.arg)
	}
	if !validName(g.metaKey, true) {
		return nil, fmt.Errorf("mcpgate: invalid _meta key %q (use letters, digits, '_', '-', '.' and '/')", g.metaKey)
	}
	g.header, g.signupURL = m.Header(), m.SignupURL()
	g.places = [4]string{
		placeHeader:     "the " + g.header + " header",
		placeMeta:       `_meta["` + g.metaKey + `"]`,
		placeMetaHeader: `_meta["` + g.header + `"]`,
		placeArgument:   "the " + g.arg + " argument",
	}
	g.tools = make(map[string]*Tool, len(cfg.Tools))
	for _, name := range slices.Sorted(maps.Keys(cfg.Tools)) { // the same first error every time
		t, err := g.compile(name, cfg.Tools[name])
		if err != nil {
			return nil, err
		}
		g.tools[name] = t
	}
	return g, nil
}

// Argument returns the name of the tool argument that carries the token.
func (g *Gate) Argument() string { return g.arg }

// MetaKey returns the key of the request _meta that carries the token.
func (g *Gate) MetaKey() string { return g.metaKey }

// Tool returns the compiled requirement of the tool name listed in
// [Config.Tools], or nil if the list does not name it.
func (g *Gate) Tool(name string) *Tool { return g.tools[name] }

// Compile validates the requirement of a tool registered on its own, with
// its requirement, rather than listed in [Config.Tools]. It reports what
// [New] reports for a listed tool, a tool that Config.Tools lists, and an
// input schema that declares a property named like the token argument: the
// gate removes that argument from every call, so the tool would never see
// it.
//
// schema is the tool's input schema as the front end holds it: a
// json.RawMessage, or any value that encodes as a JSON object; nil if it
// has none. A schema that is not a JSON object declares no property.
func (g *Gate) Compile(name string, req Requirement, schema any) (*Tool, error) {
	if _, ok := g.tools[name]; ok {
		return nil, fmt.Errorf("mcpgate: tool %q is already gated by Config.Tools", name)
	}
	if props, err := schemaProperties(schema); err == nil && props[g.arg] != nil {
		return nil, fmt.Errorf("mcpgate: tool %q has an argument %q of its own; the gate removes that argument (choose another Config.Argument)", name, g.arg)
	}
	return g.compile(name, req)
}

// ToolFromMeta returns the tool whose *[ToolInfo] [Tool.DecorateMeta] put
// in meta, the _meta of a tool, if that tool is one of this gate's; nil
// otherwise. A front end that stores decorated tools finds their
// requirement through it.
func (g *Gate) ToolFromMeta(meta map[string]any) *Tool {
	info, ok := meta[ToolMetaKey].(*ToolInfo)
	if !ok || info == nil || info.tool == nil || info.tool.gate != g {
		return nil
	}
	return info.tool
}

// Authorize runs a call of t through the gate of the Middleware, as
// [middleware.Middleware.Authorize] does for an HTTP request: it verifies
// in.Token (or refuses with in.TokenErr), checks it against t's
// requirement and, for a ChargeBefore tool, charges it. A front end sets
// in.Token and in.TokenErr from [Finder.Result]. The returned grant is
// pending for a paid tool that charges after it succeeded: the front end
// commits it for a final, successful result and abandons it otherwise.
func (g *Gate) Authorize(ctx context.Context, t *Tool, in middleware.Input) (middleware.Grant, error) {
	if t == nil || t.gate != g {
		return g.m.Authorize(ctx, nil, in) // refused with internal_error
	}
	return g.m.Authorize(ctx, t.route, in)
}

// RefusalDetail describes a refusal from [Gate.Authorize] (or from
// committing its grant) for a tool error result: the Middleware's text
// ([middleware.Middleware.Describe]), followed, where a token would help,
// by a sentence naming the argument, and the machine-readable detail with
// the argument and the _meta key. A front end answers the call with
// isError, Message as the text content and the detail as the
// structuredContent.
func (g *Gate) RefusalDetail(err error) middleware.RefusalDetail {
	ref, d := g.m.Describe(err)
	d.Argument, d.MetaKey = g.arg, g.metaKey
	if tokenAdvice(ref.Code()) {
		d.Message += ` Pass the token in the "` + g.arg + `" argument of this tool.`
	}
	return d
}

// MetaWithoutToken returns meta, the _meta of a tool call, without the
// entries that may carry the token ([Gate.MetaKey] and the header name)
// and without the entries named by keys: meta itself when it has none of
// them, otherwise a copy, nil when the copy would be empty. meta is never
// changed.
func (g *Gate) MetaWithoutToken(meta map[string]any, keys ...string) map[string]any {
	strip := func(k string) bool { return k == g.metaKey || k == g.header || slices.Contains(keys, k) }
	found := false
	for k := range meta {
		if strip(k) {
			found = true
			break
		}
	}
	if !found {
		return meta
	}
	var out map[string]any
	for k, v := range meta {
		if !strip(k) {
			if out == nil {
				out = make(map[string]any, len(meta)-1)
			}
			out[k] = v
		}
	}
	return out
}

// Name returns the tool's name.
func (t *Tool) Name() string { return t.name }

// ChargeBefore reports whether the tool charges before it runs
// ([Requirement.ChargeBefore]).
func (t *Tool) ChargeBefore() bool { return t.before }

// Info returns the tool's *[ToolInfo], the entry of its _meta in
// tools/list. It is shared: do not modify it.
func (t *Tool) Info() *ToolInfo { return t.info }

// ArgumentDescription returns the description of the token argument in the
// tool's input schema, for a model: what to pass, what it costs, where to
// get one, where else it may go.
func (t *Tool) ArgumentDescription() string { return t.argDesc }

// DecorateDescription returns the tool description desc with a line
// appended that says in short what [Tool.ArgumentDescription] says, for
// models that read descriptions only.
func (t *Tool) DecorateDescription(desc string) string {
	if desc == "" {
		return t.descLine
	}
	return desc + "\n\n" + t.descLine
}

// DecorateMeta returns a copy of meta, the _meta of the tool, with its
// *[ToolInfo] under [ToolMetaKey]. meta is never changed.
func (t *Tool) DecorateMeta(meta map[string]any) map[string]any {
	return withEntry(meta, ToolMetaKey, t.info)
}

// DecorateSchema returns the tool's input schema with the token argument
// as a string property described by [Tool.ArgumentDescription], in place
// of any property of that name. schema is a json.RawMessage or any value
// that encodes as a JSON object, and is never changed; the members of the
// result other than the argument keep their JSON text, numbers as written
// (only white space and the escaping of strings may differ). It reports a
// schema, or a "properties" member, that is not a JSON object.
func (t *Tool) DecorateSchema(schema any) (json.RawMessage, error) {
	obj, err := schemaObject(schema)
	if err != nil {
		return nil, fmt.Errorf("mcpgate: tool %q: %w", t.name, err)
	}
	props, err := properties(obj)
	if err != nil {
		return nil, fmt.Errorf("mcpgate: tool %q: %w", t.name, err)
	}
	if props == nil {
		props = make(map[string]json.RawMessage, 1)
	}
	if props[t.gate.arg], err = json.Marshal(map[string]string{"type": "string", "description": t.argDesc}); err != nil {
		return nil, err
	}
	if obj["properties"], err = json.Marshal(props); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// compile validates one tool requirement.
func (g *Gate) compile(name string, req Requirement) (*Tool, error) {
	if name == "" {
		return nil, errors.New("mcpgate: empty tool name")
	}
	if req.ChargeBefore && req.Timing == middleware.ChargeAfter {
		return nil, fmt.Errorf("mcpgate: tool %q: ChargeBefore set with Timing middleware.ChargeAfter", name)
	}
	if req.Price.NeedsRequest() {
		return nil, fmt.Errorf("mcpgate: tool %q: middleware.PriceFunc needs an HTTP request, which a tool call does not have; use middleware.ContextPrice", name)
	}
	r := req.Requirement
	r.Timing = middleware.ChargeAfter
	if req.ChargeBefore {
		r.Timing = middleware.ChargeBefore
	}
	if r.Name == "" {
		r.Name = name
	}
	rt, err := g.m.Route(r)
	if err != nil {
		return nil, fmt.Errorf("mcpgate: tool %q: %w", name, err)
	}
	if req.ChargeBefore && !rt.Paid() {
		return nil, fmt.Errorf("mcpgate: tool %q: ChargeBefore set on a tool without a price", name)
	}
	t := &Tool{gate: g, name: name, route: rt, before: req.ChargeBefore}
	t.info = g.toolInfo(t)
	t.argDesc, t.descLine = g.argumentText(t.info), descriptionLine(t.info)
	return t, nil
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

// withEntry returns a copy of m with v under key.
func withEntry(m map[string]any, key string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	maps.Copy(out, m)
	out[key] = v
	return out
}
