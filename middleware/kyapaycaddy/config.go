package kyapaycaddy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/kyapay/kyapay-go/charge"
	"github.com/kyapay/kyapay-go/kyapay"
	"github.com/kyapay/kyapay-go/middleware"
)

// resolved is a Handler's configuration with its placeholders resolved,
// its defaults applied and every field validated.
type resolved struct {
	verifier verifierSettings
	charger  chargerSettings
	redis    *redisSettings // nil: no shared store
	header   string
	policy   middleware.StatusPolicy
	req      middleware.Requirement
	mcp      *mcpResolved
}

type mcpResolved struct {
	maxBody int64
	tools   map[string]toolResolved
}

type toolResolved struct {
	open bool
	req  middleware.Requirement
}

// fieldErr is a configuration error naming the field, as written in the
// Caddyfile and in the JSON config.
func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("kyapay: %s: %s", field, fmt.Sprintf(format, args...))
}

// resolve validates h's fields and resolves their placeholders, before
// anything is built. It sets h.charged.
func (h *Handler) resolve() (*resolved, error) {
	repl := caddy.NewReplacer()
	var out resolved
	var err error
	str := func(field, v string) string {
		if err != nil || v == "" {
			return v
		}
		s, rerr := repl.ReplaceOrErr(v, true, true)
		if rerr != nil {
			err = fieldErr(field, "%v", rerr)
		}
		return s
	}

	env := str("env", h.Env)
	switch env {
	case "":
		env = kyapay.EnvProduction
	case kyapay.EnvProduction, kyapay.EnvSandbox:
	default:
		if err == nil {
			err = fieldErr("env", "%q is not %q or %q", env, kyapay.EnvProduction, kyapay.EnvSandbox)
		}
	}
	out.verifier.Env = env
	for _, iss := range h.Issuers {
		out.verifier.Issuers = append(out.verifier.Issuers, str("issuers", iss))
	}
	if len(out.verifier.Issuers) == 0 {
		out.verifier.Issuers = []string{kyapay.ProductionIssuer}
		if env == kyapay.EnvSandbox {
			out.verifier.Issuers = []string{kyapay.SandboxIssuer}
		}
	}
	out.verifier.Audience = str("seller_id", h.SellerID)
	out.verifier.AnyAudience = h.InsecureAnyAudience
	out.verifier.ServiceID = str("service_id", h.ServiceID)
	if err != nil {
		return nil, err
	}
	switch {
	case out.verifier.Audience == "" && !h.InsecureAnyAudience:
		return nil, fieldErr("seller_id", "required: the seller agent's account ID, the aud claim of the tokens Skyfire issues for this seller (set insecure_any_audience to accept tokens issued for any seller)")
	case out.verifier.Audience != "" && h.InsecureAnyAudience:
		return nil, fieldErr("insecure_any_audience", "set together with seller_id; choose one")
	}
	if h.Redis != "" {
		// As for api_key, say only what failed: the text may hold a
		// password.
		raw, rerr := repl.ReplaceOrErr(h.Redis, true, true)
		if rerr != nil {
			return nil, fieldErr("redis", "a placeholder is unknown or empty (for {env.NAME}, is NAME set in Caddy's environment?)")
		}
		rs, perr := parseRedisURL(raw)
		if perr != nil {
			return nil, fieldErr("redis", "%v", perr)
		}
		out.redis = &rs
	}

	out.header = h.Header
	if out.header == "" {
		out.header = kyapay.HeaderName
	}
	if inNamespace(out.header) {
		return nil, fieldErr("header", "%q is in the Kyapay- namespace, which is removed from every request", out.header)
	}
	switch h.StatusPolicy {
	case "", "seed":
		out.policy = middleware.PolicySeed
	case "status_codes":
		out.policy = middleware.PolicyStatusCodes
	default:
		return nil, fieldErr("status_policy", "%q is not seed or status_codes", h.StatusPolicy)
	}
	if h.ChargeTimeout < 0 {
		return nil, fieldErr("charge_timeout", "negative")
	}
	if h.MaxBuffer < 0 {
		return nil, fieldErr("max_buffer", "negative")
	}

	if out.req, err = h.requirement(); err != nil {
		return nil, err
	}
	h.charged = !out.req.Price.IsZero()
	if h.MCP != nil {
		if out.req.Timing == middleware.ChargeAfter {
			return nil, fieldErr("timing", "after is not allowed on an mcp route: MCP answers may be event streams, which cannot be held until a charge is confirmed; use before")
		}
		m := &mcpResolved{maxBody: h.MCP.MaxBody, tools: make(map[string]toolResolved, len(h.MCP.Tools))}
		if m.maxBody < 0 {
			return nil, fieldErr("mcp: max_body", "negative")
		}
		if m.maxBody == 0 {
			m.maxBody = DefaultMaxBody
		}
		for name, price := range h.MCP.Tools {
			if name == "" {
				return nil, fieldErr("mcp: tool", "empty tool name")
			}
			t := toolResolved{req: out.req}
			switch price {
			case "open":
				t.open = true
			case "free":
				t.req.Price = middleware.Price{}
			default:
				p, perr := parsePrice(price)
				if perr != nil {
					return nil, fieldErr("mcp: tool "+fmt.Sprintf("%q", name), "%v", perr)
				}
				if p.IsZero() {
					return nil, fieldErr("mcp: tool "+fmt.Sprintf("%q", name), "want a price, service, free or open")
				}
				t.req.Price = p
				h.charged = true
			}
			if !t.open {
				t.req.Name = name
				if h.Name != "" {
					t.req.Name = h.Name + " " + name
				}
			}
			m.tools[name] = t
		}
		out.mcp = m
	}

	if !h.charged {
		return &out, nil
	}
	key := h.APIKey
	switch {
	case key != "" && h.APIKeyFile != "":
		return nil, fieldErr("api_key_file", "set together with api_key; choose one")
	case h.APIKeyFile != "":
		path, rerr := repl.ReplaceOrErr(h.APIKeyFile, true, true)
		if rerr != nil {
			return nil, fieldErr("api_key_file", "%v", rerr)
		}
		if key, err = readAPIKey(path); err != nil {
			return nil, err
		}
	case key != "":
		// The error of a failed placeholder may quote the config text, which
		// for a mistyped literal key would be the key: say only what failed.
		s, rerr := repl.ReplaceOrErr(key, true, true)
		if rerr != nil {
			return nil, fieldErr("api_key", "a placeholder is unknown or empty (for {env.NAME}, is NAME set in Caddy's environment?)")
		}
		key = s
	default:
		return nil, fieldErr("api_key", "required on a route that charges: set api_key {env.SKYFIRE_API_KEY} or api_key_file")
	}
	out.charger.apiKey = key
	out.charger.baseURL = str("api_url", h.APIURL)
	if err != nil {
		return nil, err
	}
	if out.charger.baseURL == "" {
		out.charger.baseURL = charge.ProductionBaseURL
		if env == kyapay.EnvSandbox {
			out.charger.baseURL = charge.SandboxBaseURL
		}
	}
	return &out, nil
}

// requirement builds the route's requirement from Types, Identity, Price,
// Timing, Format and Name.
func (h *Handler) requirement() (middleware.Requirement, error) {
	var req middleware.Requirement
	for _, t := range h.Types {
		tt, err := kyapay.ParseTokenType(t)
		if err != nil {
			return req, fieldErr("types", "%q is not kya, pay or kya-pay", t)
		}
		req.Types |= tt
	}
	req.IdentityFields = h.Identity
	if h.Price != "" {
		p, err := parsePrice(h.Price)
		if err != nil {
			return req, fieldErr("price", "%v", err)
		}
		req.Price = p
	}
	switch h.Timing {
	case "", "before":
		req.Timing = middleware.ChargeBefore
	case "after":
		req.Timing = middleware.ChargeAfter
	default:
		return req, fieldErr("timing", "%q is not before or after", h.Timing)
	}
	switch h.Format {
	case "", "auto":
		req.Format = middleware.FormatAuto
	case "text":
		req.Format = middleware.FormatText
	case "json":
		req.Format = middleware.FormatJSON
	default:
		return req, fieldErr("format", "%q is not auto, text or json", h.Format)
	}
	req.Name = h.Name
	// Compile it once here so that a bad identity field or a set of types
	// that accepts nothing is reported before anything is built.
	if err := checkRequirement(req); err != nil {
		return req, err
	}
	return req, nil
}

// parsePrice parses "service" or a decimal amount greater than zero.
func parsePrice(s string) (middleware.Price, error) {
	if s == "service" {
		return middleware.ServicePrice(), nil
	}
	a, err := kyapay.ParseAmount(s)
	if err != nil {
		return middleware.Price{}, fmt.Errorf("%q is not a decimal USD amount (such as 0.01) or service", s)
	}
	if a.IsZero() {
		return middleware.Price{}, errors.New("a price must be greater than zero (leave it out for a free route)")
	}
	return middleware.FixedPrice(s), nil
}

// checkRequirement reports what the gate would refuse in req, naming the
// field, before anything that needs the real settings is built.
func checkRequirement(req middleware.Requirement) error {
	m, err := checker()
	if err != nil {
		return fmt.Errorf("kyapay: %w", err)
	}
	if len(req.IdentityFields) > 0 {
		if _, err := m.Route(middleware.Requirement{IdentityFields: req.IdentityFields}); err != nil {
			return fieldErr("identity", "%v", err)
		}
	}
	if _, err := m.Route(req); err != nil {
		return fieldErr("types", "%v", err)
	}
	return nil
}

// checker is a gate that is never served, only asked to compile
// requirements: the core's own validation, without a Verifier that
// fetches keys.
var checker = sync.OnceValues(func() (*middleware.Middleware, error) {
	v, err := kyapay.NewVerifier(kyapay.VerifierConfig{
		Issuers:  []string{"https://issuer.invalid"},
		Keys:     kyapay.StaticKeys{},
		Audience: "validation-only",
	})
	if err != nil {
		return nil, err
	}
	return middleware.New(middleware.Config{Verifier: v, Charger: noCharger{}})
})

// noCharger lets the checker compile priced requirements.
type noCharger struct{}

func (noCharger) Charge(context.Context, string, kyapay.Amount) (charge.Receipt, error) {
	return charge.Receipt{}, errors.New("kyapaycaddy: validation only")
}

func (noCharger) ChargeServicePrice(context.Context, string) (charge.Receipt, error) {
	return charge.Receipt{}, errors.New("kyapaycaddy: validation only")
}

// inNamespace reports whether the header name is in the Kyapay-
// namespace, in any case and with '_' or '.' for '-'.
func inNamespace(name string) bool {
	return len(name) > len(namespace) && strings.EqualFold(name[:len(namespace)-1], namespace[:len(namespace)-1]) &&
		isDash(name[len(namespace)-1])
}
